"""Window arithmetic over frame indices: spans, hops and cross-fade weights. No decoding here."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["ClipSpan", "bounce_indices", "cover_spans", "triangular_weights"]


class ClipSpan(NamedTuple):
    """Frames ``start <= t < stop`` of a video."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


def cover_spans(num_frames: int, clip_len: int, overlap: int) -> list[ClipSpan]:
    """Windows of ``clip_len`` frames, advancing by ``clip_len - overlap``, that cover ``[0, T)``.

    The last window is moved back so that it ends at ``T`` and keeps the full length (it then
    overlaps its predecessor by more than ``overlap``). A video shorter than ``clip_len`` is one
    span.
    """
    if clip_len < 1 or not 0 <= overlap < clip_len:
        raise ValueError(f"need clip_len > overlap >= 0, got {clip_len} and {overlap}")
    if num_frames <= clip_len:
        return [ClipSpan(0, num_frames)]
    hop = clip_len - overlap
    spans = [ClipSpan(s, s + clip_len) for s in range(0, num_frames - clip_len + 1, hop)]
    if spans[-1].stop < num_frames:
        spans.append(ClipSpan(num_frames - clip_len, num_frames))
    return spans


def triangular_weights(length: int) -> torch.Tensor:
    """Cross-fade weights ``[length]``: rise to 1 in the middle, never 0 at the ends."""
    t = torch.arange(length, dtype=torch.float32)
    return torch.minimum(t + 1, length - t) / ((length + 1) // 2)


def bounce_indices(num_frames: int, length: int, start: int = 0) -> torch.Tensor:
    """``length`` indices into a ``num_frames``-frame video: forward, backward, forward...

    Used to make a ``length``-frame clip from a shorter video without a jump cut.
    Returns int64 ``[length]``.
    """
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    if num_frames == 1:
        return torch.zeros(length, dtype=torch.long)
    period = 2 * (num_frames - 1)
    t = (torch.arange(length) + start) % period
    return torch.where(t < num_frames, t, period - t)
