"""The training run folder: what a run writes, and how a new run starts in it or continues it.

Layout (DESIGN.md)::

    config.yaml                    the resolved config
    metrics.jsonl                  one JSON object per logged step: {"step", ...values}
    events.out.tfevents.*          the same values for TensorBoard (train/..., val/...)
    checkpoints/step_XXXXXXX.pt    the newest ``keep_last`` step checkpoints (plain data)
    last.pt                        the newest checkpoint
    samples/step_XXXXXXX.png       mixture | outputs | targets of a few validation blends
    summary.json                   how the run ended

Every process may read the folder; only the main one writes (a :class:`RunFolder` made with
``main=False`` does nothing when asked to write).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from centrifuge.checkpoint import capture_rng, resume_checkpoint, save_checkpoint, spec_to_record
from centrifuge.config import Config, dump_config
from centrifuge.errors import OutputExistsError, TrainingError
from centrifuge.utils import atomic_path
from centrifuge.version import __version__
from centrifuge.viz import image_grid, save_png

__all__ = ["RunFolder", "training_state"]


class RunFolder:
    """A training run's folder.

    Args:
        path: the folder (created on the first write).
        main: whether this process writes (rank 0); other ranks only read.
    """

    def __init__(self, path: str | os.PathLike, *, main: bool = True) -> None:
        self.path = Path(path)
        self.main = main
        self.writer = None  # TensorBoard, once opened
        self.saved_at = time.monotonic()

    @property
    def last(self) -> Path:
        """``last.pt``: the newest checkpoint."""
        return self.path / "last.pt"

    def last_checkpoint_note(self) -> str:
        """Where the newest checkpoint is, in words, for a message about a run that stopped."""
        if self.last.exists():
            return f"the last good checkpoint is {self.last}"
        return "no checkpoint was written"

    def prepare(self, *, resume: bool, force: bool) -> dict | None:
        """The checkpoint to continue from, or ``None`` to start afresh.

        With ``resume``: the newest intact checkpoint (``None`` when the folder holds none yet).
        Without: ``None``, after checking that the folder holds no run, unless ``force``.

        Raises:
            TrainingError: ``resume`` of a folder that does not exist.
            OutputExistsError: the folder holds a run and neither ``resume`` nor ``force``.
        """
        if resume:
            if not self.path.is_dir():
                raise TrainingError(f"{self.path}: no run to resume (the folder does not exist).")
            found = resume_checkpoint(self.path)
            return found[0] if found is not None else None
        if (self.path / "config.yaml").exists() and not force:
            raise OutputExistsError(
                f"{self.path} already holds a run: pass --resume to continue it "
                "or --force to start again."
            )
        return None

    def open(self, step: int) -> None:
        """Start logging at ``step`` (0 for a new run): drop what an earlier run in this folder
        logged or saved after ``step``, so that every step appears once in ``metrics.jsonl`` and
        only this run's step checkpoints are kept, and open TensorBoard, which drops its own
        later events (``purge_step``)."""
        if not self.main:
            return
        path = self.path / "metrics.jsonl"
        if path.exists():
            kept = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError):  # e.g. a line cut short by a kill
                    if json.loads(line)["step"] <= step:
                        kept.append(f"{line}\n")
            with atomic_path(path) as tmp:
                tmp.write_text("".join(kept))
        for old in (self.path / "checkpoints").glob("step_*.pt"):
            if int(old.stem.removeprefix("step_")) > step:
                old.unlink()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.path), purge_step=step + 1)
        self.saved_at = time.monotonic()

    def write_config(self, config: Config) -> None:
        """Write the resolved config as ``config.yaml``."""
        if self.main:
            with atomic_path(self.path / "config.yaml") as tmp:
                tmp.write_text(dump_config(config))

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append ``values`` of ``step`` to ``metrics.jsonl`` and TensorBoard (``val_*`` keys go
        to the ``val`` group, without the prefix; the others to ``train``)."""
        if not self.main:
            return
        if self.writer is not None:
            for key, value in values.items():
                group = "val" if key.startswith("val_") else "train"
                self.writer.add_scalar(f"{group}/{key.removeprefix('val_')}", value, step)
        with open(self.path / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    def save(self, state: dict[str, Any], *, keep_last: int) -> Path | None:
        """Write checkpoint ``state`` (plain data, with its ``"step"``) as
        ``checkpoints/step_XXXXXXX.pt`` and ``last.pt``; keep the newest ``keep_last`` step files.
        Returns the step file's path (``None`` in a process that does not write)."""
        if not self.main:
            return None
        folder = self.path / "checkpoints"
        path = save_checkpoint(state, folder / f"step_{int(state['step']):07d}.pt")
        save_checkpoint(state, self.last)
        kept = sorted(folder.glob("step_*.pt"))
        for old in kept[: max(0, len(kept) - keep_last)]:
            old.unlink(missing_ok=True)
        self.saved_at = time.monotonic()
        return path

    def minutes_since_save(self) -> float:
        """Minutes since the last :meth:`save` (or since this object was made)."""
        return (time.monotonic() - self.saved_at) / 60

    def save_samples(
        self, step: int, mixture: torch.Tensor, pred: torch.Tensor, layers: torch.Tensor
    ) -> Path | None:
        """``samples/step_XXXXXXX.png``: one row per blend of the middle frames of the mixture,
        the N outputs and the K targets.

        Shapes: mixture ``[B, C, T, H, W]``, pred ``[B, N, C, T, H, W]``, layers
        ``[B, K, C, T, H, W]``, all in ``[0, 1]``.
        """
        if not self.main:
            return None
        t = mixture.shape[2] // 2
        rows = [
            [mixture[b, :, t], *pred[b, :, :, t], *layers[b, :, :, t]] for b in range(len(layers))
        ]
        cols = ["mixture", *[f"out {i + 1}" for i in range(pred.shape[1])]]
        cols += [f"target {k + 1}" for k in range(layers.shape[1])]
        return save_png(
            image_grid(rows, col_labels=cols), self.path / "samples" / f"step_{step:07d}.png"
        )

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        if self.main:
            with atomic_path(self.path / "summary.json") as tmp:
                tmp.write_text(json.dumps(summary, indent=2))

    def flush(self) -> None:
        """Write out buffered TensorBoard events."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Close TensorBoard's event file."""
        if self.writer is not None:
            self.writer.close()


def training_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, config: Config
) -> dict[str, Any]:
    """The checkpoint of a run at ``step``, as plain data (``torch.load(weights_only=True)``):
    ``{"model_name", "model_kwargs", "model", "optimizer", "step", "config", "rng", "versions"}``.
    """
    return {
        **spec_to_record(model.config),  # "model_name", "model_kwargs"
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "config": config.to_dict(),
        "rng": capture_rng(),
        "versions": {"torch": str(torch.__version__), "centrifuge": __version__},
    }
