"""Pure functions on frames ``[C, T, H, W]`` (or ``[..., C, T, H, W]``), floats in ``[0, 1]``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "center_crop",
    "crop",
    "pad_to_multiple",
    "resize",
    "shrink",
    "unpad",
]


def crop(frames: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Spatial crop of ``[..., H, W]``."""
    return frames[..., top : top + height, left : left + width]


def center_crop(frames: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
    """Centre crop of ``[..., H, W]`` to ``height x width`` (square when ``width`` is None)."""
    width = height if width is None else width
    h, w = frames.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop {h}x{w} frames to {height}x{width}")
    return crop(frames, (h - height) // 2, (w - width) // 2, height, width)


def resize(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize ``[C, T, H, W]`` (or ``[B, C, T, H, W]``) frames spatially (bilinear, antialiased)."""
    if frames.shape[-2:] == (height, width):
        return frames
    lead = frames.shape[:-2]
    flat = frames.reshape(-1, 1, *frames.shape[-2:])  # [(B C T), 1, H, W]
    out = F.interpolate(
        flat, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return out.reshape(*lead, height, width)


def shrink(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Cheap down-sampling (area averaging) of ``[..., C, T, H, W]`` to a short side of at most
    ``size``, for comparisons rather than for display."""
    h, w = frames.shape[-2:]
    if min(h, w) <= size:
        return frames
    scale = size / min(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    lead = frames.shape[:-2]
    flat = frames.reshape(-1, 1, h, w)
    return F.interpolate(flat, size=shape, mode="area").reshape(*lead, *shape)


def pad_to_multiple(
    frames: torch.Tensor, multiples: tuple[int, int, int]
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Replicate-pad ``[..., C, T, H, W]`` at the end of T, H and W to multiples of ``multiples``.

    Returns the padded frames and the original ``(T, H, W)`` for :func:`unpad`.
    """
    t, h, w = frames.shape[-3:]
    mt, mh, mw = multiples
    pt, ph, pw = (
        math.ceil(t / mt) * mt - t,
        math.ceil(h / mh) * mh - h,
        math.ceil(w / mw) * mw - w,
    )
    if pt == ph == pw == 0:
        return frames, (t, h, w)
    lead = frames.shape[:-4]
    flat = frames.reshape(-1, *frames.shape[-4:])  # [B, C, T, H, W]
    padded = F.pad(flat, (0, pw, 0, ph, 0, pt), mode="replicate")
    return padded.reshape(*lead, *padded.shape[-4:]), (t, h, w)


def unpad(frames: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """Crop ``[..., T, H, W]`` back to ``size = (T, H, W)`` after :func:`pad_to_multiple`."""
    t, h, w = size
    return frames[..., :t, :h, :w]
