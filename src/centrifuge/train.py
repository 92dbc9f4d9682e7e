"""Training: plain PyTorch, one process or many (``torchrun``, DDP), exact resume.

The :class:`Trainer` steps, validates and fits; the rest has its own module: the run folder
(:mod:`centrifuge.run`), the clip batches and their blends (:mod:`centrifuge.data.batches`), the
processes (:mod:`centrifuge.distributed`) and the loss (:mod:`centrifuge.losses.objective`).
A run resumed from a checkpoint at step ``s`` sees exactly the data it would have seen, and the
learning rate is a pure function of the step. Rank 0 logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import update_bn

from centrifuge.checkpoint import restore_rng
from centrifuge.config import Config, TrainConfig, config_from_dict
from centrifuge.data.batches import clip_batches, mix_batch, side_mixtures, training_dataset
from centrifuge.data.blend import blend
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import validation_layers
from centrifuge.distributed import (
    DeviceName,
    StopSignals,
    any_rank,
    barrier,
    data_parallel,
    gather_strings,
    init_distributed,
    min_over_ranks,
    place_process,
    sync_buffers,
    weights_digest,
)
from centrifuge.errors import ConfigError, ModelError, TrainingError
from centrifuge.evaluate import WRITTEN, ScoreTotals, score_blends
from centrifuge.kinetics import KINETICS_INIT
from centrifuge.losses.objective import training_objective
from centrifuge.models.registry import build_model
from centrifuge.pretrained import initialise_from
from centrifuge.run import RunFolder, training_state

log = logging.getLogger(__name__)

__all__ = ["Trainer", "budget_steps", "lr_at", "make_optimizer"]

BUDGET_CHECKS = (30, 100, 300, 1000)  # steps after which train.max_minutes re-plans the run


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` for a :class:`~centrifuge.config.TrainConfig` (pure function)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "step":
        lr = cfg.lr
        for milestone, value in zip(cfg.milestones, cfg.milestone_lrs):
            if step >= milestone:
                lr = value
        return lr
    if cfg.schedule == "cosine":
        span = max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    raise ConfigError(f"unknown schedule {cfg.schedule!r}: use cosine, step or constant.")


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``train.optimizer`` names (``sgd``, ``adam`` or ``adamw``)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=cfg.lr, betas=(cfg.momentum, 0.999), weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}: use sgd, adam or adamw.")


def budget_steps(
    max_minutes: float, step: int, done_steps: int, elapsed: float, max_steps: int
) -> int:
    """The step to end at so that a run ends within ``max_minutes``, at the pace of the
    ``done_steps`` that took ``elapsed`` seconds (5% kept for validation and checkpoints); at
    least ``step + 1`` and at most ``max_steps``."""
    pace = elapsed / done_steps
    left = max_minutes * 60 * 0.95 - elapsed
    return max(step + 1, min(max_steps, step + int(left / pace)))


def _start_model(
    config: Config, ckpt: dict | None, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer, int]:
    """The model, optimizer and step a run starts from: those of checkpoint ``ckpt`` (whose RNG
    state is restored too), else a fresh model (seeded by ``train.seed``) or ``train.init``'s."""
    tc = config.train
    torch.manual_seed(tc.seed)
    model = build_model(config.model.name, **config.model.overrides()).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = make_optimizer(model.parameters(), tc)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"])
        return model, optimizer, int(ckpt["step"])
    if tc.init:
        try:
            initialise_from(model, tc.init)
        except ModelError as exc:
            raise ConfigError(f"train.init: {exc}") from exc
    return model, optimizer, 0


class Trainer:
    """Trains a :class:`~centrifuge.models.CentrifugeNet` on blends of a folder of videos.

    Args:
        config: the resolved configuration.
        data: training folder (recursive; Kinetics layout or any tree).
        out: run folder (see :mod:`centrifuge.run`).
        val: validation folder (fixed seeded blends); ``None`` skips validation.
        resume: continue from ``out/last.pt`` (else the latest ``checkpoints/step_*.pt``) when it
            exists.
        force: start afresh in a run folder that already holds a run.
        device: ``auto``, ``cpu`` or ``cuda``.
        callback: called with a dict of progress after every step (rank 0 only).
    """

    def __init__(
        self,
        config: Config,
        *,
        data: str | os.PathLike,
        out: str | os.PathLike,
        val: str | os.PathLike | None = None,
        resume: bool = False,
        force: bool = False,
        device: DeviceName = "auto",
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        ranks = init_distributed()
        self.rank, self.world, self.is_main = ranks.rank, ranks.world, ranks.is_main
        self.out, self.callback = Path(out), callback
        self.run = RunFolder(out, main=self.is_main)
        ckpt = self.run.prepare(resume=resume, force=force)
        if ckpt is not None:  # the run's own config wins, except for the total number of steps
            saved = config_from_dict(ckpt["config"])
            config = replace(saved, train=replace(saved.train, steps=config.train.steps))
        self.config, tc = config, config.train
        self.device = place_process(device, tc.threads, ranks)
        self.model, self.optimizer, self.step = _start_model(config, ckpt, self.device)
        # weight selection changes every sum: BatchNorm statistics are re-estimated at step 0
        self._reestimate_bn = ckpt is None and tc.init == KINETICS_INIT and tc.bn_batches > 0
        self.net = data_parallel(self.model, self.device, self.world)
        self.forward = torch.compile(self.net) if tc.compile else self.net
        self.train_entries = scan_folder(data)
        self.val_layers = None  # uint8 [P, 2, C, T, S, S] on the CPU
        if val is not None:
            dc = config.data
            self.val_layers = validation_layers(
                val, tc.val_pairs, tc.val_seed, dc.clip_len, dc.crop
            )
        self._stop: str | None = None  # the signal that stopped fit()
        self.run.open(self.step)

    # -- data ---------------------------------------------------------------------------------
    def _dataset(self) -> torch.utils.data.Dataset:
        return training_dataset(self.train_entries, self.config, rank=self.rank, device=self.device)

    def batches(self, ds: torch.utils.data.Dataset | None = None) -> Iterator[torch.Tensor]:
        """Training clip batches for steps ``self.step, ...`` (what :meth:`fit` feeds
        :meth:`train_step`; ``bench/train.py`` times the two together)."""
        ds = ds if ds is not None else self._dataset()
        return clip_batches(ds, self.config, start_step=self.step, device=self.device)

    @torch.no_grad()
    def _reestimate_batchnorm(self, ds: torch.utils.data.Dataset) -> None:
        """BatchNorm statistics of the freshly initialised model, averaged over ``train.bn_batches``
        batches of training blends drawn aside from the training stream."""
        count = self.config.train.bn_batches
        mixtures = side_mixtures(ds, self.config, rank=self.rank, device=self.device, count=count)
        with self._autocast():
            update_bn((self._to_input(m) for m in mixtures), self.model)
        sync_buffers(self.model, self.world)
        log.info("BatchNorm statistics re-estimated on %d batches", count)

    # -- one step -----------------------------------------------------------------------------
    def _autocast(self):
        if self.config.train.precision == "bf16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.config.train.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def train_step(self, clips: torch.Tensor, step: int) -> dict[str, float]:
        """One optimisation step on a batch of clips; returns ``{"loss", "lr"}``."""
        tc = self.config.train
        clips = clips.to(self.device, non_blocking=True)
        layers, mixture, weights = mix_batch(
            clips, self.config.data, seed=tc.seed, rank=self.rank, step=step
        )
        lr = lr_at(step, tc)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        with self._autocast():
            pred = self.forward(self._to_input(mixture))
        terms = training_objective(
            pred.float(),
            layers,
            mixture,
            weights,
            recompose_weight=tc.recompose_weight,
            diversity_weight=tc.diversity_weight,
            written_weight=tc.written_weight,
        )
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        value = float(terms.pit.detach())
        finite = math.isfinite(value) and math.isfinite(float(terms.total.detach()))
        # all ranks stop together, before any of them steps on bad gradients
        if any_rank(not finite, self.device, self.world):
            what = value if not finite else "non-finite on another rank"
            note = self.run.last_checkpoint_note()
            raise TrainingError(f"the loss became {what} at step {step}: training stopped; {note}.")
        self.optimizer.step()
        return {"loss": value, "lr": lr}

    def _predict(self, mixture: torch.Tensor) -> torch.Tensor:
        """The model's float32 outputs ``[B, N, C, T, H, W]`` for ``mixture [B, C, T, H, W]``."""
        with self._autocast():
            return self.model(self._to_input(mixture)).float()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation scores of the model (``val_loss``: best 2 outputs knowing the answer;
        ``val_written_*``: the layers ``separate`` would write), and the identity baseline's loss,
        on the fixed blends, scored by :func:`~centrifuge.evaluate.score_blends` as ``centrifuge
        evaluate`` scores."""
        if self.val_layers is None:
            return {}
        self.model.eval()
        totals = ScoreTotals()
        bs = max(1, self.config.train.batch_size)
        for i in range(0, len(self.val_layers), bs):
            layers = self.val_layers[i : i + bs].to(self.device).float().div_(255)
            totals.add(score_blends({"model": self._predict}, layers))
        mean = totals.means()
        written = mean["model" + WRITTEN]
        return {
            "val_written_loss": written.loss,
            "val_written_psnr_db": written.psnr_db,
            "val_written_ssim": written.ssim,
            "val_loss": mean["model"].loss,
            "val_identity": mean["identity"].loss,
            "val_diversity": mean["model"].diversity,
            "val_psnr_db": mean["model"].psnr_db,
            "val_ssim": mean["model"].ssim,
        }

    # -- bookkeeping --------------------------------------------------------------------------
    def save(self) -> Path | None:
        """Write ``checkpoints/step_XXXXXXX.pt`` and ``last.pt`` (rank 0), keep the last k."""
        if not self.is_main:
            return None
        state = training_state(self.model, self.optimizer, self.step, self.config)
        return self.run.save(state, keep_last=self.config.train.keep_last)

    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """PNG grid (middle frame): mixture | outputs | targets for a few validation blends."""
        if not self.is_main or self.val_layers is None:
            return None
        self.model.eval()
        layers = self.val_layers[:4].to(self.device).float().div_(255)
        mixture = blend(layers)
        return self.run.save_samples(self.step, mixture, self._predict(mixture).clamp(0, 1), layers)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to ``train.steps``; returns a summary (also written to ``summary.json``)."""
        self.run.write_config(self.config)
        clips_per_step = self.config.train.batch_size * self.world
        started, done_steps, last = time.monotonic(), 0, {}
        self._started, self._max_steps = started, self.config.train.steps
        with StopSignals() as stop:
            try:
                ds = self._dataset()
                if self._reestimate_bn and self.step == 0:
                    self._reestimate_batchnorm(ds)
                batches = self.batches(ds)
                while self.step < self.config.train.steps:
                    tick = time.monotonic()
                    metrics = self.train_step(next(batches), self.step)
                    self.step += 1
                    done_steps += 1
                    elapsed = time.monotonic() - started
                    if self.config.train.max_minutes and done_steps in BUDGET_CHECKS:
                        self._fit_time_budget(done_steps, elapsed)
                    metrics["clips_per_s"] = clips_per_step * done_steps / max(elapsed, 1e-9)
                    metrics["step_seconds"] = time.monotonic() - tick
                    last = self._after_step(metrics)
                    if self.is_main and self.callback is not None:
                        tc = self.config.train
                        eta = (tc.steps - self.step) * elapsed / done_steps
                        self.callback({"step": self.step, "steps": tc.steps, "eta_s": eta, **last})
                    self._stop = stop.name
                    if any_rank(self._stop is not None, self.device, self.world):
                        self.save()
                        break
            finally:
                self.run.flush()
        return self._finish(last)

    def _after_step(self, metrics: dict[str, float]) -> dict[str, float]:
        """Log, validate, draw samples and save when they are due after a step; returns the
        step's metrics with the validation scores, if any."""
        tc = self.config.train
        at_end = self.step == tc.steps
        if self.step % tc.log_every == 0 or at_end:
            self.run.log(self.step, metrics)
        if self.val_layers is not None and (self.step % tc.val_every == 0 or at_end):
            if self.is_main:
                val = self.evaluate()
                self.run.log(self.step, val)
                metrics = {**metrics, **val}
            barrier(self.world)
        if self.step % tc.sample_every == 0:
            self.save_samples()
        due = self.run.minutes_since_save() >= tc.ckpt_minutes
        if self.step % tc.ckpt_every == 0 or due or at_end:
            self.save()
        return metrics

    def _fit_time_budget(self, done_steps: int, elapsed: float) -> None:
        """Set ``train.steps`` so that the run ends within ``train.max_minutes`` (measured pace,
        5% kept for validation and checkpoints). The schedule follows the new length."""
        tc = self.config.train
        steps = budget_steps(tc.max_minutes, self.step, done_steps, elapsed, self._max_steps)
        steps = min_over_ranks(steps, self.device, self.world)  # every rank stops at one step
        if steps != tc.steps:
            log.info("time budget: %d steps (%.3f s/step)", steps, elapsed / done_steps)
            self.config = replace(self.config, train=replace(tc, steps=steps))

    def _finish(self, last: dict[str, float]) -> dict[str, Any]:
        sync_buffers(self.model, self.world)
        digests = gather_strings(weights_digest(self.model), self.world)
        summary = {
            "step": self.step,
            "steps": self.config.train.steps,
            "stopped_by": self._stop,
            "seconds": round(time.monotonic() - self._started, 1),
            "world_size": self.world,
            "weights_digests": digests,
            "ranks_in_sync": len(set(digests)) == 1,
            **last,
        }
        self.run.write_summary(summary)
        self.run.close()
        return summary
