"""Checkpoints and weight files holding plain data only.

* Training checkpoints (``.pt``): ``{"model_name", "model_kwargs", "model", "optimizer", "step",
  "config", "rng", "versions"}`` (no scheduler: the learning rate is a function of the step),
  written atomically and loaded with ``torch.load(weights_only=True)``: no pickled classes, so they
  survive code moves.
* Weights (``.safetensors``): the model's state dict, with ``model_name`` and ``model_kwargs``
(JSON)
  in the file's metadata so that the architecture can be rebuilt without code guessing.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from centrifuge.errors import ModelError
from centrifuge.utils import publish

log = logging.getLogger(__name__)

__all__ = [
    "capture_rng",
    "load_checkpoint",
    "read_weights",
    "restore_rng",
    "resume_checkpoint",
    "save_checkpoint",
    "write_weights",
]


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    return Path(tmp)


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (plain data and tensors) to ``path`` atomically."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        torch.save(state, tmp)
        with open(tmp, "rb") as f:  # on disk before it replaces the previous checkpoint
            os.fsync(f.fileno())
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such checkpoint.") from None
    except Exception as exc:
        raise ModelError(
            f"{path}: not a centrifuge checkpoint ({exc.__class__.__name__})."
        ) from exc
    if not isinstance(state, dict) or "model" not in state or "model_kwargs" not in state:
        raise ModelError(f"{path}: not a centrifuge checkpoint (no model state).")
    return state


def _step_number(path: Path) -> int:
    try:
        return int(path.stem.removeprefix("step_"))
    except ValueError:
        return -1


def resume_checkpoint(run: str | os.PathLike) -> tuple[dict, Path] | None:
    """The newest intact checkpoint of a run folder and its path (``None`` when there is none).

    ``last.pt`` and ``checkpoints/step_*.pt`` are candidates: a kill between writing a step file and
    ``last.pt`` leaves the step file newer, and a damaged file is skipped for the next newest.
    Temporary files of writes cut short by a kill are removed. Which file is used, and which were
    skipped, is logged.

    Raises:
        ModelError: checkpoints exist but none of them can be read.
    """
    run = Path(run)
    for folder in (run, run / "checkpoints"):
        for tmp in folder.glob(".*.partial"):
            tmp.unlink(missing_ok=True)
    steps = sorted(
        (p for p in (run / "checkpoints").glob("step_*.pt") if _step_number(p) >= 0),
        key=_step_number,
        reverse=True,
    )
    last = run / "last.pt"
    candidates = ([last] if last.exists() else []) + steps
    if not candidates:
        return None
    best: tuple[dict, Path] | None = None
    damaged: list[str] = []
    for path in candidates:
        if best is not None and path != last and _step_number(path) <= int(best[0]["step"]):
            break  # step files are sorted: none of the rest is newer
        try:
            state = load_checkpoint(path)
            int(state["step"])
        except (ModelError, KeyError, TypeError, ValueError) as exc:
            damaged.append(f"{path.name} ({exc})")
            continue
        if best is None or int(state["step"]) > int(best[0]["step"]):
            best = (state, path)
    if best is None:
        raise ModelError(f"{run}: no intact checkpoint to resume from ({damaged[0]}).")
    for item in damaged:
        log.warning("skipping damaged checkpoint %s", item)
    if damaged or best[1] != last:
        log.warning("resuming from %s (step %d)", best[1], int(best[0]["step"]))
    return best


def _json_kwargs(kwargs: dict[str, Any]) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})


def write_weights(
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    model_name: str,
    model_kwargs: dict[str, Any],
    extra: dict[str, str] | None = None,
) -> Path:
    """Save a state dict as safetensors with the architecture in the metadata, atomically."""
    path = Path(path)
    tmp = _atomic_target(path)
    meta = {"model_name": model_name, "model_kwargs": _json_kwargs(model_kwargs), **(extra or {})}
    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in state_dict.items()},
            str(tmp),
            metadata=meta,
        )
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_weights(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], dict]:
    """``(state_dict, model_name, model_kwargs, metadata)`` of a safetensors weights file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such weights file.") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a safetensors weights file ({exc}).") from exc
    if "model_kwargs" not in meta:
        raise ModelError(f"{path}: the weights file does not say which architecture it holds.")
    try:
        kwargs = json.loads(meta["model_kwargs"])
    except ValueError:
        raise ModelError(f"{path}: the architecture in the metadata is not valid JSON.") from None
    if isinstance(kwargs, dict) and isinstance(kwargs.get("decoder_channels"), list):
        kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return tensors, meta.get("model_name", "custom"), kwargs, meta


def capture_rng() -> dict[str, Any]:
    """RNG states of Python, NumPy and torch as plain data."""
    np_state = np.random.get_state()
    state = {
        "python": repr(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    import ast

    version, internal, gauss = ast.literal_eval(state["python"])
    random.setstate((version, tuple(internal), gauss))
    keys = state["numpy"]["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy"]["pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
