"""A frozen content prior: the full-width I3D (Kinetics-400 weights) beside a narrow encoder.

A narrow encoder (``small`` is I3D at a quarter width) keeps little of what a Kinetics I3D knows
about content (issue 22: linear CKA with the full network at ``Mixed_5c`` is 0.03, random weights
0.07). :class:`ContentPrior` runs the full-width I3D, frozen (eval-mode BatchNorm, no gradients),
on the mixture at a reduced size, and adds its deep endpoints to the narrow encoder's through
1x1x1 convolutions initialised to zero: a model with a fresh prior computes exactly what it
computed without one, and training decides how much of the prior to use.

The prior's weights are not trained; they are loaded from the converted Kinetics I3D
(:func:`centrifuge.pretrained.initialise_from` does it when a checkpoint lacks them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from centrifuge.models.i3d import I3DEncoder

__all__ = ["PRIOR_ENDPOINTS", "ContentPrior"]

PRIOR_ENDPOINTS: tuple[str, ...] = ("Mixed_5c", "Mixed_4f", "Mixed_3c")  # deep, content-rich


class ContentPrior(nn.Module):
    """Frozen full-width I3D features, adapted to a narrow encoder's channels.

    Args:
        targets: ``{endpoint: channels}`` of the narrow encoder to add features to (a subset of
            :data:`PRIOR_ENDPOINTS`).
        scale: spatial size the I3D sees, as a fraction of the mixture's (0 < scale <= 1); its
            features are resized to the narrow encoder's endpoint sizes.
    """

    def __init__(self, *, targets: Mapping[str, int], scale: float = 0.5) -> None:
        super().__init__()
        if not 0 < scale <= 1:
            raise ValueError(f"prior scale must be in (0, 1], got {scale}")
        unknown = set(targets) - set(PRIOR_ENDPOINTS)
        if unknown:
            raise ValueError(f"prior endpoints must be among {PRIOR_ENDPOINTS}, got {unknown}")
        self.scale = scale
        self.encoder = I3DEncoder(width=1.0, final_endpoint="Mixed_5c")
        self.encoder.requires_grad_(False)
        self.adapters = nn.ModuleDict()
        for name, channels in targets.items():
            conv = nn.Conv3d(self.encoder.channels[name], channels, kernel_size=1)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
            self.adapters[name] = conv

    def train(self, mode: bool = True) -> ContentPrior:
        """Train the adapters only: the I3D stays in eval mode (its BatchNorm statistics fixed)."""
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(
        self, mixture: torch.Tensor, sizes: Mapping[str, Sequence[int]]
    ) -> dict[str, torch.Tensor]:
        """Shape: mixture ``[B, 3, T, H, W]`` in ``[0, 1]``; ``sizes`` the ``(t, h, w)`` of each
        target endpoint -> ``{endpoint: [B, channels, t, h, w]}`` to add to those endpoints."""
        x = mixture
        if self.scale < 1:
            h, w = mixture.shape[-2:]
            size = (mixture.shape[2], max(1, round(h * self.scale)), max(1, round(w * self.scale)))
            x = F.interpolate(mixture, size=size, mode="trilinear", align_corners=False)
        with torch.no_grad():
            feats = self.encoder.forward_endpoints(x, tuple(self.adapters))
        out = {}
        for name, adapter in self.adapters.items():
            f = feats[name]
            if tuple(f.shape[-3:]) != tuple(sizes[name]):
                f = F.interpolate(f, size=tuple(sizes[name]), mode="nearest")
            out[name] = adapter(f)
        return out
