"""Layers at full size from a model run at a reduced size, keeping the input's own detail.

A residual model (``small``: each layer = mixture + learned difference) run on a downscaled
mixture predicts differences that are smooth at the scale it saw. Resizing its layers back to the
input size blurs the whole picture; upsampling only the difference and adding it to the
full-size mixture keeps every pixel of detail the layers share with the input
(``bench/residual.py``, ``bench/RESULTS.md``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["add_upsampled_difference"]


def add_upsampled_difference(
    pred: torch.Tensor, small: torch.Tensor, mixture: torch.Tensor
) -> torch.Tensor:
    """``mixture + upsample(pred - small)``: full-size layers from a reduced-size prediction.

    Args:
        pred: the model's layers for ``small``, ``[..., N, C, T, h, w]`` floats (about ``[0, 1]``).
        small: the reduced-size mixture the model was given, ``[..., C, T, h, w]`` in ``[0, 1]``.
        mixture: the full-size mixture ``small`` was made from, ``[..., C, T, H, W]`` in
            ``[0, 1]`` with ``H >= h`` and ``W >= w``.

    Returns:
        ``[..., N, C, T, H, W]`` float32, not clamped: the mixture plus each layer's difference,
        upsampled bilinearly (half-pixel centres). When ``small`` is ``mixture`` itself (no
        reduction) it is ``pred`` up to float rounding.

    Shape:
        ``pred [N, C, T, h, w]``, ``small [C, T, h, w]``, ``mixture [C, T, H, W]`` ->
        ``[N, C, T, H, W]`` (a leading batch dimension on all three is kept).
    """
    h, w = small.shape[-2:]
    height, width = mixture.shape[-2:]
    if pred.shape[-4:] != small.shape[-4:] or mixture.shape[-4:-2] != small.shape[-4:-2]:
        raise ValueError(
            f"pred {list(pred.shape)}, small {list(small.shape)} and mixture "
            f"{list(mixture.shape)} do not line up as [N, C, T, h, w], [C, T, h, w], [C, T, H, W]"
        )
    if height < h or width < w:
        raise ValueError(f"mixture {height}x{width} is smaller than the prediction {h}x{w}")
    difference = pred.float() - small.float().unsqueeze(-5)  # [..., N, C, T, h, w]
    lead = difference.shape[:-2]
    flat = difference.reshape(-1, 1, h, w)  # [(... N C T), 1, h, w]
    # upsampling only: plain bilinear equals the antialiased resize here and is about 2x faster
    up = F.interpolate(flat, size=(height, width), mode="bilinear", align_corners=False)
    up = up.reshape(*lead, height, width)  # [..., N, C, T, H, W]
    return up.add_(mixture.float().unsqueeze(-5))
