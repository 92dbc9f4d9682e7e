"""I3D encoder: Inception-v1 inflated to 3D (Carreira & Zisserman, CVPR 2017), up to ``Mixed_5c``.

The network is an ordered ``nn.ModuleDict`` of TF-named endpoints. It can stop at any endpoint
(``final_endpoint``; the paper's Table 4 uses ``Mixed_3c``, ``Mixed_4f`` and ``Mixed_5c``, i.e. 7,
17 and 21 conv layers deep) and still owns every parameter it uses. Padding is TF "SAME" (one
helper, ``same_padding``), so any ``T, H, W`` works: each stride-2 stage gives ``ceil(n / 2)``, and
:attr:`I3DEncoder.strides` holds the total stride of every endpoint. BatchNorm follows TF's I3D
(``eps=1e-3``); ``width`` scales every channel count for small models.

Input: floats in ``[0, 1]``; :meth:`I3DEncoder.forward_endpoints` rescales to I3D's ``[-1, 1]``
(the one place this happens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ENDPOINTS",
    "I3D_BLOCKS",
    "I3DClassifier",
    "I3DEncoder",
    "InceptionBlock",
    "Unit3D",
    "same_padding",
]

# Inception block widths: (branch0 1x1, branch1 1x1 -> 3x3, branch2 1x1 -> 3x3, branch3 pool -> 1x1)
I3D_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}

# (name, kind, out channels or None, kernel, stride). Strides are (T, H, W).
_LAYOUT: list[tuple[str, str, int | None, tuple[int, int, int], tuple[int, int, int]]] = [
    ("Conv3d_1a_7x7", "conv", 64, (7, 7, 7), (2, 2, 2)),
    ("MaxPool3d_2a_3x3", "pool", None, (1, 3, 3), (1, 2, 2)),
    ("Conv3d_2b_1x1", "conv", 64, (1, 1, 1), (1, 1, 1)),
    ("Conv3d_2c_3x3", "conv", 192, (3, 3, 3), (1, 1, 1)),
    ("MaxPool3d_3a_3x3", "pool", None, (1, 3, 3), (1, 2, 2)),
    ("Mixed_3b", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_3c", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("MaxPool3d_4a_3x3", "pool", None, (3, 3, 3), (2, 2, 2)),
    ("Mixed_4b", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_4c", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_4d", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_4e", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_4f", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("MaxPool3d_5a_2x2", "pool", None, (2, 2, 2), (2, 2, 2)),
    ("Mixed_5b", "mixed", None, (3, 3, 3), (1, 1, 1)),
    ("Mixed_5c", "mixed", None, (3, 3, 3), (1, 1, 1)),
]
ENDPOINTS: tuple[str, ...] = tuple(name for name, *_ in _LAYOUT)


def same_padding(
    size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]
) -> tuple[int, ...]:
    """TF "SAME" padding for ``F.pad`` on ``(T, H, W)``: output ``ceil(n / s)`` per dimension.

    Returns ``(w_front, w_back, h_front, h_back, t_front, t_back)``.
    """
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _symmetric(kernel: Sequence[int], stride: Sequence[int]) -> bool:
    """Stride-1 odd kernels pad symmetrically on every size, so the conv can pad by itself."""
    return all(s == 1 and k % 2 == 1 for k, s in zip(kernel, stride))


class Unit3D(nn.Module):
    """Conv3d (no bias) -> BatchNorm3d -> ReLU, with TF "SAME" padding."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        inner = tuple(k // 2 for k in kernel) if _symmetric(kernel, stride) else 0
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, padding=inner, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, C_in, T, H, W] -> [B, C_out, ceil(T/s), ceil(H/s), ceil(W/s)]``."""
        if not _symmetric(self.kernel, self.stride):
            x = F.pad(x, same_padding(x.shape[-3:], self.kernel, self.stride))
        return F.relu(self.bn(self.conv(x)), inplace=True)


class MaxPool3dSame(nn.Module):
    """Max pooling with TF "SAME" padding (padded cells never win: they are ``-inf``)."""

    def __init__(self, *, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, C, T, H, W] -> [B, C, ceil(T/s), ceil(H/s), ceil(W/s)]``."""
        pad = same_padding(x.shape[-3:], self.kernel, self.stride)
        if any(pad):
            x = F.pad(x, pad, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock(nn.Module):
    """Inception-v1 block in 3D: four branches concatenated on channels."""

    def __init__(
        self, *, in_channels: int, widths: Sequence[int], bn_momentum: float = 0.01
    ) -> None:
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        unit = {"bn_momentum": bn_momentum}
        self.branch_0 = Unit3D(in_channels=in_channels, out_channels=b0, **unit)
        self.branch_1 = nn.Sequential(
            Unit3D(in_channels=in_channels, out_channels=b1a, **unit),
            Unit3D(in_channels=b1a, out_channels=b1b, kernel=(3, 3, 3), **unit),
        )
        self.branch_2 = nn.Sequential(
            Unit3D(in_channels=in_channels, out_channels=b2a, **unit),
            Unit3D(in_channels=b2a, out_channels=b2b, kernel=(3, 3, 3), **unit),
        )
        self.branch_3 = nn.Sequential(
            MaxPool3dSame(kernel=(3, 3, 3), stride=(1, 1, 1)),
            Unit3D(in_channels=in_channels, out_channels=b3, **unit),
        )
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, C_in, T, H, W] -> [B, out_channels, T, H, W]``."""
        branches = (self.branch_0, self.branch_1, self.branch_2, self.branch_3)
        return torch.cat([b(x) for b in branches], dim=1)


def _scale(channels: int, width: float) -> int:
    """Channel count times ``width``, rounded to a multiple of 4 (at least 4)."""
    return max(4, round(channels * width / 4) * 4) if width != 1.0 else channels


class I3DEncoder(nn.Module):
    """I3D up to ``final_endpoint``.

    Args:
        in_channels: input channels (3 for RGB; 3N or 3N + 3 for the corrector).
        final_endpoint: last endpoint built; one of :data:`ENDPOINTS`.
        width: channel multiplier (1.0 = the original I3D).
        bn_momentum: BatchNorm momentum (0.01 is TF's 0.99 decay).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        final_endpoint: str = "Mixed_5c",
        width: float = 1.0,
        bn_momentum: float = 0.01,
    ) -> None:
        super().__init__()
        if final_endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {final_endpoint!r}; valid: {', '.join(ENDPOINTS)}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.final_endpoint = final_endpoint
        self.width = width
        self.blocks = nn.ModuleDict()
        self.channels: dict[str, int] = {}
        self.strides: dict[str, tuple[int, int, int]] = {}
        channels, total = in_channels, (1, 1, 1)
        for name, kind, out, kernel, stride in _LAYOUT:
            if kind == "conv":
                out_ch = _scale(out, width)
                block: nn.Module = Unit3D(
                    in_channels=channels,
                    out_channels=out_ch,
                    kernel=kernel,
                    stride=stride,
                    bn_momentum=bn_momentum,
                )
                channels = out_ch
            elif kind == "pool":
                block = MaxPool3dSame(kernel=kernel, stride=stride)
            else:
                widths = [_scale(c, width) for c in I3D_BLOCKS[name]]
                block = InceptionBlock(in_channels=channels, widths=widths, bn_momentum=bn_momentum)
                channels = block.out_channels
            total = tuple(a * b for a, b in zip(total, stride))
            self.blocks[name] = block
            self.channels[name] = channels
            self.strides[name] = total
            if name == final_endpoint:
                break
        self.out_channels = channels

    def forward_endpoints(
        self, x: torch.Tensor, names: Sequence[str] = ()
    ) -> dict[str, torch.Tensor]:
        """Run to ``final_endpoint``; return the requested endpoints and the final one.

        Shape: ``[B, C_in, T, H, W]`` in ``[0, 1]`` -> ``{name: [B, C_name, T/st, H/sh, W/sw]}``
        with the total strides of :attr:`strides` (rounded up).
        """
        unknown = set(names) - set(self.blocks)
        if unknown:
            raise ValueError(f"endpoints not in this encoder: {sorted(unknown)}")
        wanted = set(names) | {self.final_endpoint}
        x = x * 2.0 - 1.0  # [0, 1] -> I3D's [-1, 1]
        out: dict[str, torch.Tensor] = {}
        for name, block in self.blocks.items():
            x = block(x)
            if name in wanted:
                out[name] = x
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, C_in, T, H, W]`` in ``[0, 1]`` -> ``[B, out_channels, T', H', W']``."""
        return self.forward_endpoints(x)[self.final_endpoint]


class I3DClassifier(nn.Module):
    """The full-width I3D with its Kinetics logits head (``Logits`` of DeepMind's I3D): for
    checking converted weights on a known answer, not used for separation.

    Head: 2x7x7 average pool (stride 1, no padding), a 1x1x1 conv with bias to ``n_classes``, then
    the mean over the remaining time and space (DeepMind squeezes a 1x1 space at 224 px, then
    averages over time).
    """

    def __init__(self, *, n_classes: int = 400) -> None:
        super().__init__()
        self.encoder = I3DEncoder(width=1.0)
        self.logits = nn.Conv3d(self.encoder.out_channels, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[B, 3, T, H, W]`` in ``[0, 1]`` (T >= 9, H, W >= 193) -> ``[B, n_classes]``."""
        feats = self.encoder(x)
        pooled = F.avg_pool3d(feats, kernel_size=(2, 7, 7), stride=1)
        return self.logits(pooled).mean(dim=(2, 3, 4))
