"""Names and paths -> models: bundled weights, weight files and training checkpoints."""

from __future__ import annotations

import inspect
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from centrifuge.checkpoint import load_checkpoint, read_weights
from centrifuge.errors import ModelError
from centrifuge.models.centrifuge import CentrifugeNet
from centrifuge.models.registry import MODEL_CONFIGS, build_model, model_kwargs

log = logging.getLogger(__name__)

__all__ = [
    "bundled_weights",
    "check_model_kwargs",
    "initialise_from",
    "load_model",
    "untrained_like",
]


def _seeded(make, seed: int):
    """Call ``make()`` under ``torch.manual_seed(seed)`` without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def untrained_like(model: CentrifugeNet, *, seed: int = 0, **overrides) -> CentrifugeNet:
    """A freshly initialised model of the same architecture (the paper's "no training" baseline),
    with optional architecture ``overrides`` (e.g. ``residual=False``)."""
    kwargs = getattr(model, "model_kwargs", None)
    if kwargs is None:
        raise ModelError("the model does not record its architecture.")
    kwargs = {**kwargs, **overrides}
    fresh = _seeded(lambda: CentrifugeNet(**kwargs), seed)
    fresh.model_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return fresh


def bundled_weights(name: str) -> Path | None:
    """Path of ``centrifuge/weights/<name>.safetensors`` when the package ships it."""
    resource = resources.files("centrifuge") / "weights" / f"{name}.safetensors"
    return Path(str(resource)) if resource.is_file() else None


# What a weights file or checkpoint may ask for: the registered configurations with room to spare
# (Table 2's 8-output models, wider encoders), never a model that cannot fit in memory.
MAX_OUTPUTS = 16
MAX_WIDTH = 2 * max(float(c["width"]) for c in MODEL_CONFIGS.values())
MAX_DECODER_CHANNELS = 4 * max(max(c["decoder_channels"]) for c in MODEL_CONFIGS.values())
_ARCHITECTURE = inspect.signature(CentrifugeNet.__init__).parameters


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_model_kwargs(kwargs: object, source: str) -> dict[str, Any]:
    """The architecture a file asks for, checked against the registry's limits before anything is
    built (so a bad file is one clear :class:`ModelError`, not a crash or a huge allocation)."""
    if not isinstance(kwargs, dict):
        raise ModelError(f"{source}: the architecture is not a set of named settings.")
    unknown = sorted(set(kwargs) - set(_ARCHITECTURE) - {"self"})
    if unknown:
        raise ModelError(f"{source}: unknown architecture setting {unknown[0]!r}.")
    kwargs = dict(kwargs)
    checks = {
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
    }
    for key, ok in checks.items():
        if key in kwargs and not ok(kwargs[key]):
            raise ModelError(f"{source}: invalid architecture setting {key}={kwargs[key]!r:.40}.")
    if "decoder_channels" in kwargs:
        kwargs["decoder_channels"] = tuple(kwargs["decoder_channels"])
    return kwargs


def _from_state(name: str, kwargs: object, state: object, source: str) -> CentrifugeNet:
    kwargs = check_model_kwargs(kwargs, source)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{source}: the weights are not a set of named tensors.")
    try:
        with torch.device("meta"):  # sizes only: nothing is allocated until the file fits
            shapes = {k: tuple(v.shape) for k, v in CentrifugeNet(**kwargs).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: cannot rebuild its architecture ({exc}).") from exc
    wrong = sorted(set(shapes) ^ set(state)) or sorted(
        k for k in shapes if tuple(state[k].shape) != shapes[k]
    )
    if wrong:
        key = wrong[0]
        detail = (
            f"{list(state[key].shape)} where the architecture has {list(shapes[key])}"
            if key in state and key in shapes
            else ("missing" if key in shapes else "not in the architecture")
        )
        raise ModelError(
            f"{source}: weights do not fit the architecture it names "
            f"({len(wrong)} tensors differ, e.g. {key}: {detail})."
        )
    model = CentrifugeNet(**kwargs)
    model.load_state_dict(state)
    model.source = source  # type: ignore[attr-defined]
    model.model_name = name  # type: ignore[attr-defined]
    model.model_kwargs = dict(kwargs)  # type: ignore[attr-defined]
    return model


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    allow_untrained: bool = True,
) -> CentrifugeNet:
    """A model in eval mode from a registered name, a ``.safetensors`` file or a ``.pt`` checkpoint.

    A registered name loads its bundled weights when the package ships them; otherwise (``tiny``,
    ``paper``) the model is freshly initialised (seed 0) and ``model.pretrained`` is False.
    """
    text = str(name_or_path)
    if text in MODEL_CONFIGS:
        weights = bundled_weights(text)
        if weights is None:
            if not allow_untrained:
                raise ModelError(f"model {text!r} has no bundled weights.")
            log.warning("model %r has no bundled weights: using an untrained model", text)
            model = _seeded(lambda: build_model(text), 0)
            model.source, model.model_name, model.pretrained = "untrained", text, False
            model.model_kwargs = model_kwargs(text)
            return model.to(device).eval()
        path = weights
    else:
        path = Path(text)
        if not path.exists():
            raise ModelError(
                f"{text}: neither a registered model ({', '.join(MODEL_CONFIGS)}) "
                "nor an existing file."
            )
    if path.suffix == ".safetensors":
        state, name, kwargs, _ = read_weights(path)
    else:
        ckpt = load_checkpoint(path)
        state, name, kwargs = ckpt["model"], ckpt.get("model_name", "custom"), ckpt["model_kwargs"]
    model = _from_state(str(name), kwargs, state, str(path))
    model.pretrained = True  # type: ignore[attr-defined]
    return model.to(device).eval()


def initialise_from(model: torch.nn.Module, source: str | os.PathLike) -> None:
    """Copy the weights of ``source`` (a registered name with bundled weights, a ``.safetensors``
    file or a ``.pt`` checkpoint) into ``model``, to fine-tune it. Tensors that ``source`` lacks may
    only be the corrector's (a predictor-corrector can start from a trained predictor); any other
    difference is a :class:`ModelError`. ``"kinetics-i3d"`` starts every RGB encoder from the
    converted Kinetics-400 I3D (:mod:`centrifuge.kinetics`; the decoder starts fresh)."""
    from centrifuge.kinetics import KINETICS_INIT, initialise_encoders

    if str(source) == KINETICS_INIT:
        names = initialise_encoders(model)
        log.info("Kinetics-400 I3D weights in %s", ", ".join(names))
        return
    state = load_model(source, allow_untrained=False).state_dict()
    own = model.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            raise ModelError(f"{source} does not fit this architecture (tensor {key}).")
    missing = [k for k in own if k not in state]
    if any(not k.startswith("corrector.") for k in missing):
        raise ModelError(f"{source} lacks tensors of this model ({missing[0]}).")
    model.load_state_dict(state, strict=False)
    if missing:
        log.info("%s: the corrector starts fresh", source)
