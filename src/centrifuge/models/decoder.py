"""U-Net decoder of 3D transposed convolutions over I3D endpoints.

The paper leaves the decoder to its extended version; we follow the common published reading:

* one up-stage per encoder level, from the deepest endpoint back to the input resolution. For an
  encoder cut at ``Mixed_5c`` the levels are ``Mixed_4f`` (T/4, H/16), ``Mixed_3c`` (T/2, H/8),
  ``Conv3d_2c_3x3`` (T/2, H/4), ``Conv3d_1a_7x7`` (T/2, H/2) and the input itself: five up-stages
  with up-sampling factors (2,2,2), (2,2,2), (1,2,2), (1,2,2), (2,2,2). Shallower encoders
  (``Mixed_4f``, ``Mixed_3c``) simply have fewer stages.
* each stage: ``ConvTranspose3d`` (kernel ``s + 2``, padding 1, so exactly ``s``-fold) -> BN
  -> ReLU, cropped to the skip's size (inputs of any size work); the skip is first reduced by a
  1x1x1 conv; both are concatenated and mixed by a 3x3x3 conv.
* a last 3x3x3 conv to ``out_channels`` (3N for N layers) with a bias and no output activation.

Change the stage widths with ``channels``; change the stage recipe in :class:`UpBlock`.

``light_stages`` (0 in the paper's reading) makes the last, highest-resolution stages cheap for CPU
inference: a transposed conv that does not overlap in space (kernel = stride in H and W; still
``s + 2`` in time, so frames blend smoothly), a spatial-only ``1x3x3`` fuse conv and a ``1x1x1``
head. At full resolution these stages otherwise cost most of the network's FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from centrifuge.models.i3d import Unit3D

__all__ = ["Decoder", "UpBlock"]


class UpBlock(nn.Module):
    """Up-sample by ``stride`` with a transposed conv, then fuse a (reduced) skip connection.

    Args:
        in_channels: channels of the deeper feature map.
        skip_channels: channels of the skip connection.
        out_channels: channels after the block.
        stride: up-sampling factor per ``(T, H, W)``, each 1 or 2.
        skip_reduced: channels the skip is reduced to by a 1x1x1 conv (no conv when the skip is
            already that narrow).
        light: the cheap recipe (spatial kernel = stride in the transposed conv, ``1x3x3`` fuse).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        stride: tuple[int, int, int],
        skip_reduced: int,
        light: bool = False,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if light:  # spatially non-overlapping up-sampling, spatial-only fuse: cheap at full size
            st = stride[0]
            kernel = (st + 2 if st > 1 else 1, stride[1], stride[2])
            padding, fuse_kernel = (1 if st > 1 else 0, 0, 0), (1, 3, 3)
        else:
            kernel, padding, fuse_kernel = tuple(s + 2 for s in stride), 1, (3, 3, 3)
        self.up = nn.ConvTranspose3d(
            in_channels, out_channels, kernel, stride, padding=padding, bias=False
        )
        self.up_bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=bn_momentum)
        if skip_channels <= skip_reduced:
            self.reduce: nn.Module = nn.Identity()
            skip_reduced = skip_channels
        else:
            self.reduce = Unit3D(
                in_channels=skip_channels, out_channels=skip_reduced, bn_momentum=bn_momentum
            )
        self.fuse = Unit3D(
            in_channels=out_channels + skip_reduced,
            out_channels=out_channels,
            kernel=fuse_kernel,
            bn_momentum=bn_momentum,
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, C_in, t, h, w]``, skip ``[B, C_skip, T, H, W]`` -> ``[B, C_out, T, H, W]``
        (``T <= s_t * t`` etc.; the up-sampled map is cropped to the skip's size)."""
        up = torch.relu(self.up_bn(self.up(x)))
        t, h, w = skip.shape[-3:]
        up = up[..., :t, :h, :w]  # SAME padding rounded up: crop the excess at the end
        return self.fuse(torch.cat([up, self.reduce(skip)], dim=1))


class Decoder(nn.Module):
    """Stack of :class:`UpBlock` from the deepest encoder level to the input, then a linear head.

    Args:
        levels: ``(channels, total_stride)`` per skip level from the deepest feature to the input,
            e.g. ``[(1024, (8, 32, 32)), (832, (4, 16, 16)), ..., (3, (1, 1, 1))]``.
        channels: output channels of each up-stage (one per level after the first).
        out_channels: channels of the result (3N).
        light_stages: how many of the last (highest-resolution) stages use the light recipe; when
            any does, the head is a ``1x1x1`` conv.
    """

    def __init__(
        self,
        *,
        levels: Sequence[tuple[int, tuple[int, int, int]]],
        channels: Sequence[int],
        out_channels: int,
        light_stages: int = 0,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if len(channels) != len(levels) - 1:
            raise ValueError(
                f"{len(levels) - 1} up-stages need as many widths, got {len(channels)}"
            )
        self.stages = nn.ModuleList()
        in_ch = levels[0][0]
        n_stages = len(channels)
        for i, ((_, deep_stride), (skip_ch, skip_stride), out_ch) in enumerate(
            zip(levels, levels[1:], channels)
        ):
            factor = tuple(d // s for d, s in zip(deep_stride, skip_stride))
            self.stages.append(
                UpBlock(
                    in_channels=in_ch,
                    skip_channels=skip_ch,
                    out_channels=out_ch,
                    stride=factor,
                    skip_reduced=max(out_ch // 2, 4),
                    light=i >= n_stages - light_stages,
                    bn_momentum=bn_momentum,
                )
            )
            in_ch = out_ch
        head_kernel = 1 if light_stages else 3
        self.head = nn.Conv3d(
            in_ch, out_channels, kernel_size=head_kernel, padding=head_kernel // 2
        )

    def forward(self, deepest: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """Shape: deepest ``[B, C0, t, h, w]``, skips deep to shallow, the last ``[B, C, T, H, W]``
        -> ``[B, out_channels, T, H, W]``."""
        x = deepest
        for stage, skip in zip(self.stages, skips):
            x = stage(x, skip)
        return self.head(x)
