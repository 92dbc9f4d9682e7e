"""Checkpoints and weight files holding plain data only.

* Training checkpoints (``.pt``): ``{"model_name", "model_kwargs", "model", "optimizer", "step",
  "config", "rng", "versions"}`` (no scheduler: the learning rate is a function of the step),
  written atomically and loaded with ``torch.load(weights_only=True)``: no pickled classes, so they
  survive code moves.
* Weights (``.safetensors``): the model's state dict, with ``model_name`` and ``model_kwargs``
  (JSON) in the file's metadata so that the architecture can be rebuilt without code guessing.

A model's :class:`~centrifuge.models.ModelSpec` becomes those two entries through
:func:`spec_to_record` and comes back through :func:`spec_from_record`, which checks what a file
asks for against the registry's limits before anything is built.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from centrifuge.errors import ModelError
from centrifuge.models.centrifuge import CentrifugeNet, ModelSpec
from centrifuge.models.registry import MODEL_CONFIGS
from centrifuge.utils import atomic_path

log = logging.getLogger(__name__)

__all__ = [
    "capture_rng",
    "load_checkpoint",
    "read_weights",
    "restore_rng",
    "resume_checkpoint",
    "save_checkpoint",
    "spec_from_record",
    "spec_to_record",
    "write_weights",
]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (plain data and tensors) to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path, durable=True) as tmp:  # on disk before it replaces the previous one
        torch.save(state, tmp)
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


# What a weights file or checkpoint may ask for: the registered configurations with room to spare
# (Table 2's 8-output models, wider encoders), never a model that cannot fit in memory.
MAX_OUTPUTS = 16
MAX_WIDTH = 2 * max(float(c["width"]) for c in MODEL_CONFIGS.values())
MAX_DECODER_CHANNELS = 4 * max(max(c["decoder_channels"]) for c in MODEL_CONFIGS.values())
_ARCHITECTURE = set(inspect.signature(CentrifugeNet.__init__).parameters) - {"self", "name"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_CHECKS = {
    "n_outputs": lambda v: _is_int(v) and 2 <= v <= MAX_OUTPUTS,
    "final_endpoint": lambda v: v in ("Mixed_3c", "Mixed_4f", "Mixed_5c"),
    "width": lambda v: isinstance(v, (int, float)) and 0 < v <= MAX_WIDTH,
    "decoder_channels": lambda v: (
        isinstance(v, (list, tuple))
        and 1 <= len(v) <= 5
        and all(_is_int(c) and 1 <= c <= MAX_DECODER_CHANNELS for c in v)
    ),
    "corrector": lambda v: isinstance(v, bool),
    "corrector_sees_mixture": lambda v: isinstance(v, bool),
    "residual": lambda v: isinstance(v, bool),
    "light_stages": lambda v: _is_int(v) and 0 <= v <= 5,
    "bn_momentum": lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
    "prior_scale": lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
}


def spec_to_record(spec: ModelSpec) -> dict[str, Any]:
    """``{"model_name", "model_kwargs"}`` of a checkpoint or weights file: plain data, JSON-ready
    (tuples become lists)."""
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in spec.kwargs.items()}
    return {"model_name": spec.name, "model_kwargs": kwargs}


def spec_from_record(record: Mapping[str, Any], source: str) -> ModelSpec:
    """The :class:`ModelSpec` a file records (inverse of :func:`spec_to_record`), checked against
    the registry's limits before anything is built, so that a bad file is one clear
    :class:`ModelError`, not a crash or a huge allocation. ``source`` names the file in errors.
    A missing ``model_name`` is ``"custom"``; missing arguments take :class:`CentrifugeNet`'s
    defaults when the model is built."""
    kwargs = record.get("model_kwargs")
    if not isinstance(kwargs, dict):
        raise ModelError(f"{source}: the architecture is not a set of named settings.")
    unknown = sorted(set(kwargs) - _ARCHITECTURE)
    if unknown:
        raise ModelError(f"{source}: unknown architecture setting {unknown[0]!r}.")
    for key, ok in _CHECKS.items():
        if key in kwargs and not ok(kwargs[key]):
            raise ModelError(f"{source}: invalid architecture setting {key}={kwargs[key]!r:.40}.")
    return ModelSpec(str(record.get("model_name", "custom")), dict(kwargs))


def write_weights(
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike,
    *,
    spec: ModelSpec,
    extra: dict[str, str] | None = None,
) -> Path:
    """Save a state dict as safetensors with the architecture (``spec``) in the metadata,
    atomically."""
    path = Path(path)
    record = spec_to_record(spec)
    meta = {**record, "model_kwargs": json.dumps(record["model_kwargs"]), **(extra or {})}
    with atomic_path(path) as tmp:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in state_dict.items()},
            str(tmp),
            metadata=meta,
        )
    return path


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], ModelSpec, dict]:
    """``(state_dict, spec, metadata)`` of a safetensors weights file (the spec checked by
    :func:`spec_from_record`)."""
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
    spec = spec_from_record({**meta, "model_kwargs": kwargs}, str(path))
    return tensors, spec, meta


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
