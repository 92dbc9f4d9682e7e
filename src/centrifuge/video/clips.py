"""Window arithmetic: where windows start, how they are cut from a stream, how their overlapping
predictions are cross-faded back together. No decoding and no model here.

One rule everywhere (time windows and spatial tiles alike): windows of ``length`` items advance by
``length - overlap``; the last one is shorter when the sequence ends, unless that would leave it
holding nothing but overlap, in which case the sequence ended inside the previous window. Tiles use
:func:`tile_starts` instead: every tile keeps the full side, the last one is moved back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

__all__ = [
    "OverlapAdd",
    "bounce_indices",
    "sliding_windows",
    "tile_starts",
    "triangular_weights",
    "window_starts",
]

Item = TypeVar("Item")


def _check(length: int, overlap: int) -> None:
    if length < 1 or not 0 <= overlap < length:
        raise ValueError(f"need clip_len > overlap >= 0, got {length} and {overlap}")


def window_starts(num_frames: int, clip_len: int, overlap: int) -> list[int]:
    """First frame of each window over ``num_frames`` frames (what :func:`sliding_windows` cuts).

    Windows start every ``clip_len - overlap`` frames until one reaches the end; the last window is
    shorter when the video ends inside it. A video of at most ``clip_len`` frames is one window.
    """
    _check(clip_len, overlap)
    hop = clip_len - overlap
    starts = [0]
    while starts[-1] + clip_len < num_frames:
        starts.append(starts[-1] + hop)
    return starts


def sliding_windows(
    items: Iterable[Item], clip_len: int, overlap: int
) -> Iterator[tuple[int, list[Item]]]:
    """Cut a stream (of frames, of anything) into ``(start, items)`` windows as
    :func:`window_starts` places them, holding at most one window in memory. Works without knowing
    the stream's length in advance (a decoder's frame count may be wrong)."""
    _check(clip_len, overlap)
    hop = clip_len - overlap
    buffer: list[Item] = []
    start = 0
    for item in items:
        buffer.append(item)
        if len(buffer) == clip_len:
            yield start, buffer
            buffer = buffer[hop:]
            start += hop
    if buffer and (start == 0 or len(buffer) > overlap):
        yield start, buffer


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """First pixel of each tile of side ``tile`` (sharing ``overlap`` pixels) covering ``length``
    pixels; the last tile is moved back to end at ``length``. One tile when ``length <= tile``."""
    if length <= tile:
        return [0]
    _check(tile, overlap)
    hop = tile - overlap
    starts = list(range(0, length - tile + 1, hop))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def triangular_weights(length: int) -> torch.Tensor:
    """Cross-fade weights ``[length]``: rise to 1 in the middle, never 0 at the ends."""
    t = torch.arange(length, dtype=torch.float32)
    return torch.minimum(t + 1, length - t) / ((length + 1) // 2)


class OverlapAdd:
    """Weighted sum of overlapping predictions, handed back as it is finished.

    Along one axis (time windows, ``dim=2`` of ``[N, C, T, H, W]``): ``add(offset, pred, weight)``
    accumulates ``pred * weight`` at absolute index ``offset`` of ``dim``; ``pop_finished(upto)``
    returns the normalised sum (divided by the summed weights) before ``upto`` and forgets it, so
    memory is bounded by the span not yet finished.

    On a fixed canvas (spatial tiles of one window, :meth:`on_canvas`): offsets are tuples of
    slices and :meth:`finished` returns the whole normalised canvas.

    ``weight`` broadcasts against ``pred`` and is summed at its own shape (``[1, 1, t, 1, 1]`` for
    time, ``[1, 1, 1, h, w]`` for tiles), never expanded to the predictions' size.
    """

    def __init__(self, dim: int = 2) -> None:
        self.dim: int | None = dim
        self.start = 0  # absolute index of the first item held along ``dim``
        self.sum: torch.Tensor | None = None
        self.weight: torch.Tensor | None = None

    @classmethod
    def on_canvas(cls, shape: tuple[int, ...], weight_shape: tuple[int, ...]) -> OverlapAdd:
        """An accumulator over a fixed canvas: sums ``shape``, weights ``weight_shape``."""
        acc = cls()
        acc.dim = None
        acc.sum, acc.weight = torch.zeros(shape), torch.zeros(weight_shape)
        return acc

    @property
    def end(self) -> int:
        """Absolute index one past the last item held along ``dim``."""
        return self.start + (0 if self.sum is None else self.sum.shape[self.dim])

    def covered(self, index: tuple[slice, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """On a canvas: ``(normalised sum, mask)`` of a region; ``mask`` [broadcastable] is true
        where something was added already (outside it the sum is 0)."""
        weight = self.weight[index]
        return self.sum[index] / weight.clamp_min(1e-8), weight > 0

    def add(
        self, offset: int | tuple[slice, ...], pred: torch.Tensor, weight: torch.Tensor
    ) -> None:
        """Accumulate ``pred * weight`` at ``offset`` (an absolute index along ``dim``, or a tuple
        of slices into the canvas)."""
        if self.dim is None:
            self.sum[offset] += pred * weight
            self.weight[offset] += weight
            return
        if self.sum is None:
            self.start = offset
            self.sum, self.weight = pred * weight, weight.clone()
            return
        if offset < self.start:
            raise ValueError(f"offset {offset} is before the unfinished span (from {self.start})")
        length = pred.shape[self.dim]
        grow = offset + length - self.end
        if grow > 0:
            self.sum, self.weight = (_grow(x, self.dim, grow) for x in (self.sum, self.weight))
        local = offset - self.start
        self.sum.narrow(self.dim, local, length).add_(pred * weight)
        self.weight.narrow(self.dim, local, length).add_(weight)

    def finished(self) -> torch.Tensor:
        """On a canvas: the whole normalised sum (every element must have been covered)."""
        return self.sum / self.weight

    def pop_finished(self, upto: int | None = None) -> torch.Tensor | None:
        """Normalised sum of the items before absolute index ``upto`` (``None``: all held),
        removed from the accumulator; ``None`` when there is nothing to hand back."""
        if self.sum is None:
            return None
        upto = self.end if upto is None else min(upto, self.end)
        done = upto - self.start
        if done <= 0:
            return None
        d = self.dim
        out = self.sum.narrow(d, 0, done) / self.weight.narrow(d, 0, done)
        self.sum = self.sum.narrow(d, done, self.sum.shape[d] - done).clone()
        self.weight = self.weight.narrow(d, done, self.weight.shape[d] - done).clone()
        self.start = upto
        return out


def _grow(x: torch.Tensor, dim: int, by: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = by
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


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
