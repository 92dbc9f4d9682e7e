"""Registered model configurations and the one place that turns a name into a module.

* ``tiny``: for tests and CPU smoke runs (seconds on a CPU).
* ``small``: the bundled default; trained, fast enough for CPUs. I3D at a quarter width, 4 outputs,
  residual outputs (mixture + learned difference) and a light full-resolution decoder stage.
* ``paper``: the paper's configuration (I3D to Mixed_5c, predictor-corrector, 4 outputs).

The table is data: a name maps to the keyword arguments of :class:`CentrifugeNet`, and
:func:`build_model` is the one constructor, for a registered name (with overrides) or for the
:class:`ModelSpec` a model, weights file or checkpoint records.
"""

from __future__ import annotations

from typing import Any

from centrifuge.errors import ModelError
from centrifuge.models.centrifuge import CentrifugeNet, ModelSpec

__all__ = ["MODEL_CONFIGS", "build_model", "count_flops", "model_kwargs"]

MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {
        "n_outputs": 2,
        "final_endpoint": "Mixed_5c",
        "width": 0.125,
        "decoder_channels": (32, 24, 16, 12, 8),
        "corrector": False,
        "residual": False,
        "light_stages": 0,
        "bn_momentum": 0.1,
    },
    "small": {
        "n_outputs": 4,
        "final_endpoint": "Mixed_5c",
        "width": 0.25,
        "decoder_channels": (128, 96, 48, 24, 12),
        "corrector": False,
        "residual": True,
        "light_stages": 1,
        "bn_momentum": 0.05,
    },
    "paper": {
        "n_outputs": 4,
        "final_endpoint": "Mixed_5c",
        "width": 1.0,
        "decoder_channels": (256, 256, 128, 64, 32),
        "corrector": True,
        "residual": False,
        "light_stages": 0,
        "bn_momentum": 0.01,
    },
}


def model_kwargs(name: str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :class:`CentrifugeNet` for a registered ``name``, with overrides."""
    if name not in MODEL_CONFIGS:
        raise ModelError(
            f"unknown model {name!r}: choose from {', '.join(MODEL_CONFIGS)} or give a path."
        )
    return {**MODEL_CONFIGS[name], **overrides}


def build_model(name_or_spec: str | ModelSpec, **overrides: Any) -> CentrifugeNet:
    """A freshly initialised :class:`CentrifugeNet`: the only place one is constructed.

    Args:
        name_or_spec: a registered configuration, or a :class:`ModelSpec` (a model's ``config``,
            or what a file records), whose arguments are complete: missing ones take
            :class:`CentrifugeNet`'s defaults, not a registered configuration's.
        overrides: arguments replacing the configuration's.

    Example: ``build_model("paper", n_outputs=8, corrector=False)`` is Table 2's 8-output predictor;
    ``build_model(model.config)`` is a fresh copy of ``model``'s architecture.

    Raises:
        ModelError: unknown name or argument.
    """
    if isinstance(name_or_spec, ModelSpec):
        spec = ModelSpec(name_or_spec.name, {**name_or_spec.kwargs, **overrides})
    else:
        spec = ModelSpec(name_or_spec, model_kwargs(name_or_spec, **overrides))
    try:
        return CentrifugeNet(name=spec.name, **spec.kwargs)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"invalid model option: {exc}.") from exc


def count_flops(name: str, clip: tuple[int, int, int], **overrides: Any) -> int:
    """Forward FLOPs (2 per multiply-add) of one ``[3, T, H, W]`` clip, counted on the meta device
    (nothing is computed or allocated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = build_model(name, **overrides).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(1, 3, *clip))
    return int(counter.get_total_flops())
