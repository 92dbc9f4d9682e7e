"""CentrifugeNet: I3D encoder + U-Net decoder -> N output layers, with an optional corrector.

Predictor (paper Sec. 3.2): ``O~ = D(E(V))`` with ``3N`` output channels, reshaped to N videos.
Predictor-corrector: a second encoder-decoder with its own weights takes ``O~`` (and, optionally,
the mixture ``V``) and returns a residual: ``O = O~ + Delta``. Both are trained end to end.

Every model records what it is (:attr:`CentrifugeNet.config`, a :class:`ModelSpec`) and its total
stride (:attr:`CentrifugeNet.stride`); :func:`centrifuge.models.registry.build_model` is the one
place that constructs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from centrifuge.models.decoder import Decoder
from centrifuge.models.i3d import I3DEncoder
from centrifuge.models.prior import PRIOR_ENDPOINTS, ContentPrior

__all__ = ["CentrifugeNet", "ModelSpec", "UNet3D", "skip_endpoints"]

# Skip levels used for each final endpoint (from deep to shallow; the input is added last).
_SKIPS: dict[str, tuple[str, ...]] = {
    "Mixed_5c": ("Mixed_4f", "Mixed_3c", "Conv3d_2c_3x3", "Conv3d_1a_7x7"),
    "Mixed_4f": ("Mixed_3c", "Conv3d_2c_3x3", "Conv3d_1a_7x7"),
    "Mixed_3c": ("Conv3d_2c_3x3", "Conv3d_1a_7x7"),
}


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, weights aside: enough to build it again.

    Attributes:
        name: the registered configuration it was built from (``"custom"`` when none).
        kwargs: every keyword argument of :class:`CentrifugeNet` it was built with
            (``decoder_channels`` always a tuple).
    """

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "decoder_channels" in self.kwargs:
            kwargs = {**self.kwargs, "decoder_channels": tuple(self.kwargs["decoder_channels"])}
            object.__setattr__(self, "kwargs", kwargs)


def skip_endpoints(final_endpoint: str) -> tuple[str, ...]:
    """The encoder endpoints a U-Net over ``final_endpoint`` uses as skips (deep to shallow)."""
    if final_endpoint not in _SKIPS:
        raise ValueError(
            f"final endpoint must be one of {', '.join(_SKIPS)}, got {final_endpoint!r}"
        )
    return _SKIPS[final_endpoint]


class UNet3D(nn.Module):
    """One encoder-decoder: I3D to ``final_endpoint``, skips to every shallower level and the input.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        final_endpoint: ``Mixed_3c``, ``Mixed_4f`` or ``Mixed_5c``.
        width: encoder channel multiplier.
        decoder_channels: up-stage widths, deep to shallow (only the last ``len(skips) + 1`` are
            used for shallower encoders).
        light_stages: cheap recipe for the last stages (see :mod:`centrifuge.models.decoder`).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        final_endpoint: str = "Mixed_5c",
        width: float = 1.0,
        decoder_channels: Sequence[int] = (256, 256, 128, 64, 32),
        light_stages: int = 0,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        self.skips = skip_endpoints(final_endpoint)
        self.encoder = I3DEncoder(
            in_channels=in_channels,
            final_endpoint=final_endpoint,
            width=width,
            bn_momentum=bn_momentum,
        )
        enc = self.encoder
        levels = [(enc.channels[final_endpoint], enc.strides[final_endpoint])]
        levels += [(enc.channels[n], enc.strides[n]) for n in self.skips]
        levels += [(in_channels, (1, 1, 1))]
        n_stages = len(levels) - 1
        if len(decoder_channels) < n_stages:
            raise ValueError(f"need {n_stages} decoder widths, got {len(decoder_channels)}")
        self.decoder = Decoder(
            levels=levels,
            channels=list(decoder_channels)[-n_stages:],
            out_channels=out_channels,
            light_stages=light_stages,
            bn_momentum=bn_momentum,
        )

    def forward(self, x: torch.Tensor, prior: ContentPrior | None = None) -> torch.Tensor:
        """Shape: ``[B, C_in, T, H, W]`` (any T, H, W) -> ``[B, C_out, T, H, W]``. A ``prior``
        (for an RGB input, the mixture) adds its features of ``x`` to the encoder's endpoints."""
        feats = self.encoder.forward_endpoints(x, self.skips)
        if prior is not None:
            sizes = {n: feats[n].shape[-3:] for n in prior.adapters}
            for name, extra in prior(x, sizes).items():
                feats[name] = feats[name] + extra
        skips = [feats[n] for n in self.skips] + [x]
        return self.decoder(feats[self.encoder.final_endpoint], skips)


class CentrifugeNet(nn.Module):
    """The visual centrifuge: mixture ``[B, C, T, H, W]`` -> N layers ``[B, N, C, T, H, W]``.

    Attributes:
        config: the :class:`ModelSpec` it was built from (name and every argument).
        n_outputs: N.
        stride: total stride ``(T, H, W)`` of the encoder (``(8, 32, 32)`` to ``Mixed_5c``): an
            input whose sizes are multiples of it passes every stride-2 stage without rounding.

    Args:
        name: the registered configuration this is (recorded in :attr:`config`, nothing else).
        n_outputs: N, the number of output layers (>= 2).
        final_endpoint: encoder depth (paper Table 4).
        width: encoder channel multiplier.
        decoder_channels: decoder up-stage widths, deep to shallow.
        corrector: add the predictor-corrector's second encoder-decoder.
        corrector_sees_mixture: feed the mixture to the corrector beside the predictions.
        light_stages: cheap recipe for the last decoder stages (CPU-friendly models).
        residual: predict each layer as the mixture plus a learned difference (head initialised
            to zero, so training starts at the identity baseline). Not in the paper.
        bn_momentum: BatchNorm momentum.
        prior_scale: 0 for none; else a frozen full-width I3D (:class:`ContentPrior`) sees the
            mixture at this fraction of its spatial size and feeds the predictor's deep endpoints
            through zero-initialised 1x1x1 convs. Not in the paper.
    """

    def __init__(
        self,
        *,
        name: str = "custom",
        n_outputs: int = 2,
        final_endpoint: str = "Mixed_5c",
        width: float = 1.0,
        decoder_channels: Sequence[int] = (256, 256, 128, 64, 32),
        corrector: bool = False,
        corrector_sees_mixture: bool = False,
        light_stages: int = 0,
        residual: bool = False,
        bn_momentum: float = 0.01,
        prior_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if n_outputs < 2:
            raise ValueError(f"n_outputs must be >= 2, got {n_outputs}")
        arguments = {
            "n_outputs": n_outputs,
            "final_endpoint": final_endpoint,
            "width": width,
            "decoder_channels": decoder_channels,
            "corrector": corrector,
            "corrector_sees_mixture": corrector_sees_mixture,
            "light_stages": light_stages,
            "residual": residual,
            "bn_momentum": bn_momentum,
        }
        if prior_scale:  # recorded only when used: files without a prior stay as they were
            arguments["prior_scale"] = prior_scale
        self.config = ModelSpec(name, arguments)
        self.n_outputs = n_outputs
        self.corrector_sees_mixture = corrector_sees_mixture
        self.residual = residual
        common = {
            "final_endpoint": final_endpoint,
            "width": width,
            "decoder_channels": decoder_channels,
            "light_stages": light_stages,
            "bn_momentum": bn_momentum,
        }
        self.predictor = UNet3D(in_channels=3, out_channels=3 * n_outputs, **common)
        self.stride = self.predictor.encoder.strides[final_endpoint]
        self.prior = None
        if prior_scale:
            enc = self.predictor.encoder
            names = [n for n in PRIOR_ENDPOINTS if n in enc.channels]
            self.prior = ContentPrior(
                targets={n: enc.channels[n] for n in names}, scale=prior_scale
            )
        self.corrector = None
        if corrector:
            in_ch = 3 * n_outputs + (3 if corrector_sees_mixture else 0)
            self.corrector = UNet3D(in_channels=in_ch, out_channels=3 * n_outputs, **common)
        if residual:  # start exactly at the identity baseline: every layer = the mixture
            nn.init.zeros_(self.predictor.decoder.head.weight)
            nn.init.zeros_(self.predictor.decoder.head.bias)
            if self.corrector is not None:  # ...and a corrector starts as a no-op
                nn.init.zeros_(self.corrector.decoder.head.weight)
                nn.init.zeros_(self.corrector.decoder.head.bias)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate a mixture.

        Shape: ``[B, 3, T, H, W]`` in ``[0, 1]`` (any T, H, W) -> ``[B, N, 3, T, H, W]``,
        unbounded floats meant to lie in ``[0, 1]`` (clamp for display).
        """
        pred = self.predictor(mixture, self.prior)  # [B, 3N, T, H, W]
        if self.residual:
            pred = pred + mixture.repeat(1, self.n_outputs, 1, 1, 1)  # O_i = V + D_i
        if self.corrector is not None:
            inputs = torch.cat([pred, mixture], dim=1) if self.corrector_sees_mixture else pred
            pred = pred + self.corrector(inputs)
        b, _, t, h, w = pred.shape
        return pred.reshape(b, self.n_outputs, 3, t, h, w)  # [B, N, C, T, H, W]
