"""Names and paths -> models: bundled weights, weight files and training checkpoints.

A loaded model says what it is through its own record (``model.config``, a
:class:`~centrifuge.models.ModelSpec`: the name and architecture its file names); nothing is added
to it here. Whether a registered name has trained weights is :func:`bundled_weights`.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

import torch

from centrifuge.checkpoint import load_checkpoint, read_weights, spec_from_record
from centrifuge.errors import ModelError
from centrifuge.models.centrifuge import CentrifugeNet, ModelSpec
from centrifuge.models.registry import MODEL_CONFIGS, build_model

log = logging.getLogger(__name__)

__all__ = ["bundled_weights", "initialise_from", "load_model", "untrained_like"]


def _seeded(make, seed: int):
    """Call ``make()`` under ``torch.manual_seed(seed)`` without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def untrained_like(model: CentrifugeNet, *, seed: int = 0, **overrides) -> CentrifugeNet:
    """A freshly initialised model of the same architecture (the paper's "no training" baseline),
    with optional architecture ``overrides`` (e.g. ``residual=False``)."""
    return _seeded(lambda: build_model(model.config, **overrides), seed)


def bundled_weights(name: str) -> Path | None:
    """Path of ``centrifuge/weights/<name>.safetensors`` when the package ships it."""
    resource = resources.files("centrifuge") / "weights" / f"{name}.safetensors"
    return Path(str(resource)) if resource.is_file() else None


def _from_state(spec: ModelSpec, state: object, source: str) -> CentrifugeNet:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{source}: the weights are not a set of named tensors.")
    try:
        with torch.device("meta"):  # sizes only: nothing is allocated until the file fits
            shapes = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    except (ModelError, ValueError) as exc:
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
    model = build_model(spec)
    model.load_state_dict(state)
    return model


def load_model(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    allow_untrained: bool = True,
) -> CentrifugeNet:
    """A model in eval mode from a registered name, a ``.safetensors`` file or a ``.pt`` checkpoint.

    A registered name loads its bundled weights when the package ships them; otherwise (``tiny``,
    ``paper``) the model is freshly initialised (seed 0), with a warning.
    """
    text = str(name_or_path)
    if text in MODEL_CONFIGS:
        weights = bundled_weights(text)
        if weights is None:
            if not allow_untrained:
                raise ModelError(f"model {text!r} has no bundled weights.")
            log.warning("model %r has no bundled weights: using an untrained model", text)
            return _seeded(lambda: build_model(text), 0).to(device).eval()
        path = weights
    else:
        path = Path(text)
        if not path.exists():
            raise ModelError(
                f"{text}: neither a registered model ({', '.join(MODEL_CONFIGS)}) "
                "nor an existing file."
            )
    if path.suffix == ".safetensors":
        state, spec, _ = read_weights(path)
    else:
        ckpt = load_checkpoint(path)
        state, spec = ckpt["model"], spec_from_record(ckpt, str(path))
    return _from_state(spec, state, str(path)).to(device).eval()


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
    fresh = [k for k in missing if not k.startswith(("corrector.", "prior."))]
    if fresh:
        raise ModelError(f"{source} lacks tensors of this model ({fresh[0]}).")
    model.load_state_dict(state, strict=False)
    if any(k.startswith("corrector.") for k in missing):
        log.info("%s: the corrector starts fresh", source)
    if any(k.startswith("prior.encoder.") for k in missing):
        _load_prior(model)
        log.info("%s: the content prior is the Kinetics-400 I3D, its adapters at zero", source)


def _load_prior(model: torch.nn.Module) -> None:
    """The converted Kinetics-400 I3D into a model's frozen content prior (its adapters keep
    their zero initialisation)."""
    from centrifuge.kinetics import load_kinetics_state, select_encoder_weights

    encoder = model.prior.encoder  # full width: the selection keeps every channel
    encoder.load_state_dict(select_encoder_weights(load_kinetics_state(), encoder))
