"""Training: plain PyTorch, one process or many (``torchrun``, DDP), exact resume.

Clip ``i`` and the blend partners of step ``s`` come from RNGs seeded by ``(seed, rank, i)`` and
``(seed, rank, s)``: a run resumed from a checkpoint at step ``s`` sees exactly the data it would
have seen, and each rank sees different data. The learning rate is a pure function of the step.
Rank 0 logs (TensorBoard, ``metrics.jsonl``, PNG samples) and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from centrifuge.checkpoint import (
    capture_rng,
    restore_rng,
    resume_checkpoint,
    save_checkpoint,
    spec_to_record,
)
from centrifuge.config import Config, config_from_dict, dump_config
from centrifuge.data.bank import ClipBank
from centrifuge.data.blend import blend, freeze_clips, make_mixtures, mixture_weights
from centrifuge.data.folder import ClipSpec, RandomClips, StreamSampler, VideoFolder
from centrifuge.data.index import scan_folder
from centrifuge.data.photos import Interleave, PhotoClips
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.errors import ConfigError, ModelError, OutputExistsError, TrainingError
from centrifuge.kinetics import KINETICS_INIT
from centrifuge.losses import diversity, diversity_loss, pit_loss, recomposition_loss
from centrifuge.models.registry import build_model
from centrifuge.pretrained import initialise_from
from centrifuge.viz import image_grid, save_png

log = logging.getLogger(__name__)

__all__ = ["Trainer", "lr_at"]


def lr_at(step: int, cfg) -> float:
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


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, rank, step, 1]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def _gather_batch(ds: torch.utils.data.Dataset, indices: range) -> torch.Tensor:
    """Items ``indices`` of ``ds`` stacked; clips from a clip bank are cut with one gather."""
    main = ds.main if isinstance(ds, Interleave) else ds
    out: list[torch.Tensor | None] = [None] * len(indices)
    draws = []
    for j, i in enumerate(indices):
        if isinstance(ds, Interleave) and ds.uses_extra(i):
            out[j] = ds.extra[i]
        elif (
            main.group is not None
            or not isinstance(main.source, ClipBank)
            or main.source.data.device.type == "cpu"
        ):  # on a CPU, slices beat one big gather
            out[j] = main[i]
        else:
            draws.append((j, main.draw(i)))
    if draws:
        slots, items = zip(*draws)
        videos, frames, tops, lefts, flips = zip(*items)
        clips = main.source.read_batch(
            list(videos), torch.stack(frames), list(tops), list(lefts), main.spec.crop, list(flips)
        )
        for j, clip in zip(slots, clips):
            out[j] = clip
    return torch.stack(out)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), initialising the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


class Trainer:
    """Trains a :class:`~centrifuge.models.CentrifugeNet` on blends of a folder of videos.

    Args:
        config: the resolved configuration.
        data: training folder (recursive; Kinetics layout or any tree).
        out: run folder (``config.yaml``, ``checkpoints/``, ``last.pt``, TensorBoard, ``samples/``).
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
        device: str = "auto",
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.out = Path(out)
        self.rank, self.world, local_rank = _distributed()
        self.is_main = self.rank == 0
        self.callback = callback
        ckpt = self._prepare_run_folder(resume, force)
        if ckpt is not None:  # the run's own config wins, except for the total number of steps
            saved = config_from_dict(ckpt["config"])
            config = replace(saved, train=replace(saved.train, steps=config.train.steps))
        self.config = config
        tc = config.train
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(f"cuda:{local_rank}" if device == "cuda" else device)
        threads = tc.threads
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if self.device.type == "cpu" and local_world > 1:
            # Processes of one machine share its cores: more OpenMP threads than cores stall.
            threads = max(1, (threads or torch.get_num_threads()) // local_world)
        if threads:
            torch.set_num_threads(threads)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # fixed clip shapes: pick the fastest kernels
        torch.manual_seed(tc.seed)
        self.model = build_model(config.model.name, **config.model.overrides()).to(self.device)
        if tc.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.optimizer = self._make_optimizer()
        self.step = 0
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.step = int(ckpt["step"])
            restore_rng(ckpt["rng"])
        elif tc.init:
            try:
                initialise_from(self.model, tc.init)
            except ModelError as exc:
                raise ConfigError(f"train.init: {exc}") from exc
        # weight selection changes every sum: BatchNorm statistics are re-estimated at step 0
        self._reestimate_bn = ckpt is None and tc.init == KINETICS_INIT and tc.bn_batches > 0
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.forward = torch.compile(self.net) if tc.compile else self.net
        self.spec = ClipSpec(
            clip_len=config.data.clip_len,
            crop=config.data.crop,
            stride=config.data.stride,
            scale=config.data.scale,
        )
        self.train_entries = scan_folder(data)
        self.val_layers = self._load_validation(val) if val is not None else None
        self._stop: str | None = None
        self._last_ckpt_time = time.monotonic()
        self.writer = None
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._forget_later_steps()
            self.writer = SummaryWriter(str(self.out), purge_step=self.step + 1)

    # -- set-up -------------------------------------------------------------------------------
    def _prepare_run_folder(self, resume: bool, force: bool) -> dict | None:
        if resume:
            if not self.out.is_dir():
                raise TrainingError(f"{self.out}: no run to resume (the folder does not exist).")
            found = resume_checkpoint(self.out)  # the newest intact one
            return found[0] if found is not None else None
        if (self.out / "config.yaml").exists() and not force:
            raise OutputExistsError(
                f"{self.out} already holds a run: pass --resume to continue it "
                "or --force to start again."
            )
        return None

    def _forget_later_steps(self) -> None:
        """Drop what an earlier run in this folder logged or saved after the step this one starts
        from (all of it with ``--force``): every step appears once in ``metrics.jsonl`` and only
        this run's step checkpoints are kept. TensorBoard drops its events by ``purge_step``."""
        path = self.out / "metrics.jsonl"
        if path.exists():
            kept = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError):  # e.g. a line cut short by a kill
                    if json.loads(line)["step"] <= self.step:
                        kept.append(f"{line}\n")
            tmp = path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, path)
        for old in (self.out / "checkpoints").glob("step_*.pt"):
            if int(old.stem.removeprefix("step_")) > self.step:
                old.unlink()

    def _make_optimizer(self) -> torch.optim.Optimizer:
        tc = self.config.train
        params = self.model.parameters()
        if tc.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay
            )
        if tc.optimizer in ("adam", "adamw"):
            cls = torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam
            return cls(params, lr=tc.lr, betas=(tc.momentum, 0.999), weight_decay=tc.weight_decay)
        raise ConfigError(f"unknown optimizer {tc.optimizer!r}: use sgd, adam or adamw.")

    def _dataset(self) -> torch.utils.data.Dataset:
        dc, tc = self.config.data, self.config.train
        if dc.bank:
            source = ClipBank.from_entries(self.train_entries, self.spec.short_side)
            if dc.bank_on_device and self.device.type == "cuda":
                source.to(self.device)
        else:
            source = VideoFolder(None, short_side=self.spec.short_side, entries=self.train_entries)
        group = dc.n_layers if dc.same_class else None
        ds = RandomClips(
            source,
            self.spec,
            seed=tc.seed,
            rank=self.rank,
            frozen=dc.frozen,
            group=group,
            same_class=dc.same_class,
        )
        if dc.photos and dc.photo_fraction > 0:
            photos = PhotoClips(dc.photos, self.spec, seed=tc.seed, rank=self.rank)
            ds = Interleave(ds, photos, dc.photo_fraction, seed=tc.seed + self.rank)
            if dc.bank and dc.bank_on_device and self.device.type == "cuda":
                photos.to(self.device)  # with the bank: every clip of a batch on one device
        return ds

    def batches(self) -> Iterator[torch.Tensor]:
        """Training clip batches for steps ``self.step, ...`` (what :meth:`fit` feeds
        :meth:`train_step`; ``bench/train.py`` times the two together)."""
        return self._batches(self._dataset())

    def _batches(self, ds: torch.utils.data.Dataset) -> Iterator[torch.Tensor]:
        """Clip batches of ``ds`` for steps ``self.step, self.step + 1, ...``."""
        dc, tc = self.config.data, self.config.train
        per_step = tc.batch_size * (1 if dc.same_class else dc.n_layers)
        start = self.step * per_step
        on_device = dc.bank and dc.bank_on_device and self.device.type == "cuda"
        if on_device or dc.workers == 0:
            index = start
            while True:
                yield _gather_batch(ds, range(index, index + per_step))
                index += per_step
        loader = DataLoader(
            ds,
            batch_size=per_step,
            sampler=StreamSampler(start),
            num_workers=dc.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=True,
            prefetch_factor=4,
        )
        yield from loader

    def _load_validation(self, folder: str | os.PathLike) -> torch.Tensor:
        """Fixed validation layers, uint8 ``[P, 2, C, T, S, S]`` on the CPU."""
        tc, dc = self.config.train, self.config.data
        entries = scan_folder(folder)
        specs = validation_pairs(entries, tc.val_pairs, tc.val_seed, dc.clip_len)
        pairs = [torch.stack([a, b]) for a, b in iter_pairs(entries, specs, dc.clip_len, dc.crop)]
        return (torch.stack(pairs) * 255).round().to(torch.uint8)

    @torch.no_grad()
    def _reestimate_batchnorm(self, ds: torch.utils.data.Dataset) -> None:
        """BatchNorm statistics of the freshly initialised model, averaged over ``train.bn_batches``
        batches of training blends. The clips are drawn far from the training stream (index
        2**40 on), so the run then sees the same batches as one started without this."""
        dc, tc = self.config.data, self.config.train
        per_step = tc.batch_size * (1 if dc.same_class else dc.n_layers)
        far = 1 << 40

        def inputs() -> Iterator[torch.Tensor]:
            for i in range(tc.bn_batches):
                clips = _gather_batch(ds, range(far + i * per_step, far + (i + 1) * per_step))
                _, mixture, _ = self._mix(clips.to(self.device), far + i)
                yield self._to_input(mixture)

        with self._autocast():
            update_bn(inputs(), self.model)
        self._sync_buffers()
        log.info("BatchNorm statistics re-estimated on %d batches", tc.bn_batches)

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

    def _mix(
        self, clips: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dc = self.config.data
        g = _step_generator(self.config.train.seed, self.rank, step)
        alpha = dc.alpha_range if dc.alpha_range is not None else dc.alpha
        if dc.same_class:  # the dataset already grouped K clips of one class: [B, K, ...]
            weights = mixture_weights(clips.shape[0], clips.shape[1], alpha, g).to(clips.device)
            return clips, blend(clips, weights), weights
        layers, mixture, weights = make_mixtures(clips, dc.n_layers, alpha, g)
        if dc.one_frozen > 0:
            which = torch.zeros(layers.shape[:2], dtype=torch.bool)
            which[:, 0] = torch.rand(layers.shape[0], generator=g) < dc.one_frozen
            flat = freeze_clips(layers.flatten(0, 1), g, which.flatten())
            layers = flat.reshape(layers.shape)
            mixture = blend(layers, weights)
        return layers, mixture, weights

    def train_step(self, clips: torch.Tensor, step: int) -> dict[str, float]:
        """One optimisation step on a batch of clips; returns ``{"loss", "lr", ...}``."""
        tc = self.config.train
        layers, mixture, weights = self._mix(clips.to(self.device, non_blocking=True), step)
        lr = lr_at(step, tc)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.net.train()
        with self._autocast():
            pred = self.forward(self._to_input(mixture))
        pred = pred.float()
        loss, match = pit_loss(pred, layers)
        total = loss
        if tc.recompose_weight:
            total = total + tc.recompose_weight * recomposition_loss(pred, match, mixture, weights)
        if tc.diversity_weight:
            total = total + tc.diversity_weight * diversity_loss(pred, match)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
        value = float(loss.detach())
        finite = math.isfinite(value) and math.isfinite(float(total.detach()))
        stop = not finite
        if self.world > 1:  # all ranks stop together, before any of them steps on bad gradients
            flag = torch.tensor([float(stop)], device=self.device)
            dist.all_reduce(flag)
            stop = flag.item() > 0
        if stop:
            what = value if not finite else "non-finite on another rank"
            last = self.out / "last.pt"
            where = (
                f"the last good checkpoint is {last}"
                if last.exists()
                else "no checkpoint was written"
            )
            raise TrainingError(
                f"the loss became {what} at step {step}: training stopped; {where}."
            )
        self.optimizer.step()
        return {"loss": value, "lr": lr}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation loss of the model and of the identity baseline on the fixed blends."""
        if self.val_layers is None:
            return {}
        self.model.eval()
        losses, identity, div = [], [], []
        bs = max(1, self.config.train.batch_size)
        for i in range(0, len(self.val_layers), bs):
            layers = self.val_layers[i : i + bs].to(self.device).float().div_(255)
            mixture = layers.mean(dim=1)
            with self._autocast():
                pred = self.model(self._to_input(mixture)).float()
            losses.append(pit_loss(pred, layers)[0] * len(layers))
            same = mixture[:, None].expand(-1, 2, -1, -1, -1, -1)
            identity.append(pit_loss(same, layers)[0] * len(layers))
            div.append(diversity(pred).sum())
        n = len(self.val_layers)
        return {
            "val_loss": float(sum(losses)) / n,
            "val_identity": float(sum(identity)) / n,
            "val_diversity": float(sum(div)) / n,
        }

    # -- bookkeeping --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            **spec_to_record(self.model.config),  # "model_name", "model_kwargs"
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "config": self.config.to_dict(),
            "rng": capture_rng(),
            "versions": {"torch": str(torch.__version__), "centrifuge": _version()},
        }

    def save(self) -> Path | None:
        """Write ``checkpoints/step_XXXXXXX.pt`` and ``last.pt`` (rank 0), keep the last k."""
        if not self.is_main:
            return None
        state = self.state()
        path = save_checkpoint(state, self.out / "checkpoints" / f"step_{self.step:07d}.pt")
        save_checkpoint(state, self.out / "last.pt")
        kept = sorted((self.out / "checkpoints").glob("step_*.pt"))
        for old in kept[: max(0, len(kept) - self.config.train.keep_last)]:
            old.unlink(missing_ok=True)
        self._last_ckpt_time = time.monotonic()
        return path

    def _log(self, step: int, values: dict[str, float]) -> None:
        if not self.is_main:
            return
        for key, value in values.items():
            group = "val" if key.startswith("val_") else "train"
            self.writer.add_scalar(f"{group}/{key.removeprefix('val_')}", value, step)
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """PNG grid (middle frame): mixture | outputs | targets for a few validation blends."""
        if not self.is_main or self.val_layers is None:
            return None
        self.model.eval()
        layers = self.val_layers[:4].to(self.device).float().div_(255)
        mixture = layers.mean(1)
        with self._autocast():
            pred = self.model(self._to_input(mixture)).float().clamp(0, 1)
        t = mixture.shape[2] // 2
        rows = [
            [mixture[b, :, t], *pred[b, :, :, t], *layers[b, :, :, t]] for b in range(len(layers))
        ]
        n = pred.shape[1]
        cols = ["mixture", *[f"out {i + 1}" for i in range(n)], "target 1", "target 2"]
        return save_png(
            image_grid(rows, col_labels=cols), self.out / "samples" / f"step_{self.step:07d}.png"
        )

    def _on_signal(self, signum, frame) -> None:
        self._stop = signal.Signals(signum).name

    def _should_stop(self) -> bool:
        flag = torch.tensor([1.0 if self._stop else 0.0])
        if self.world > 1:
            flag = flag.to(self.device)
            dist.all_reduce(flag)
        return bool(flag.item() > 0)

    def _weights_digest(self) -> str:
        h = hashlib.sha1()
        for _, tensor in sorted(self.model.state_dict().items()):
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train to ``train.steps``; returns a summary (also written to ``summary.json``)."""
        tc = self.config.train
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_config(self.config))
        old_handlers = {
            s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)
        }
        per_step = tc.batch_size * self.world
        started, done_steps, last = time.monotonic(), 0, {}
        self._started = started
        self._max_steps = tc.steps
        try:
            ds = self._dataset()
            if self._reestimate_bn and self.step == 0:
                self._reestimate_batchnorm(ds)
            batches = self._batches(ds)
            while self.step < self.config.train.steps:
                tc = self.config.train
                tick = time.monotonic()
                clips = next(batches)
                metrics = self.train_step(clips, self.step)
                self.step += 1
                done_steps += 1
                elapsed = time.monotonic() - started
                if tc.max_minutes and done_steps in (30, 100, 300, 1000):
                    self._fit_time_budget(done_steps, elapsed)
                    tc = self.config.train
                metrics["clips_per_s"] = per_step * done_steps / max(elapsed, 1e-9)
                metrics["step_seconds"] = time.monotonic() - tick
                last = metrics
                if self.step % tc.log_every == 0 or self.step == tc.steps:
                    self._log(self.step, metrics)
                if self.val_layers is not None and (
                    self.step % tc.val_every == 0 or self.step == tc.steps
                ):
                    if self.is_main:
                        val = self.evaluate()
                        self._log(self.step, val)
                        last = {**last, **val}
                    if self.world > 1:
                        dist.barrier()
                if self.step % tc.sample_every == 0:
                    self.save_samples()
                due = (time.monotonic() - self._last_ckpt_time) / 60 >= tc.ckpt_minutes
                if self.step % tc.ckpt_every == 0 or due or self.step == tc.steps:
                    self.save()
                if self.is_main and self.callback is not None:
                    eta = (tc.steps - self.step) * elapsed / done_steps
                    self.callback({"step": self.step, "steps": tc.steps, "eta_s": eta, **last})
                if self._should_stop():
                    self.save()
                    break
        finally:
            for s, handler in old_handlers.items():
                signal.signal(s, handler)
            if self.writer is not None:
                self.writer.flush()
        return self._finish(last)

    def _fit_time_budget(self, done_steps: int, elapsed: float) -> None:
        """Set ``train.steps`` so that the run ends within ``train.max_minutes`` (measured pace,
        5% kept for validation and checkpoints). The schedule follows the new length."""
        tc = self.config.train
        pace = elapsed / done_steps
        left = tc.max_minutes * 60 * 0.95 - elapsed
        steps = max(self.step + 1, min(self._max_steps, self.step + int(left / pace)))
        if self.world > 1:  # every rank must stop at the same step
            value = torch.tensor([steps], device=self.device)
            dist.all_reduce(value, op=dist.ReduceOp.MIN)
            steps = int(value.item())
        if steps != tc.steps:
            log.info("time budget: %d steps (%.3f s/step)", steps, pace)
            self.config = replace(self.config, train=replace(tc, steps=steps))

    def _sync_buffers(self) -> None:
        """Give every rank the buffers (BatchNorm statistics) of rank 0, as DDP does before each
        forward: the last forward updated each rank's copy from its own batch."""
        if self.world > 1:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def _finish(self, last: dict[str, float]) -> dict[str, Any]:
        self._sync_buffers()
        digest = self._weights_digest()
        digests = [digest]
        if self.world > 1:
            digests = [None] * self.world
            dist.all_gather_object(digests, digest)
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
        if self.is_main:
            (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
            if self.writer is not None:
                self.writer.close()
        return summary


def _version() -> str:
    from centrifuge import __version__

    return __version__
