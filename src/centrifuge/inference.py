"""Separating videos of any length and size: windows in time, tiles in space, stable layer order.

:class:`Separator` runs a model over successive windows of ``clip_len`` frames that overlap by
``overlap`` frames:

* each window is resized (``size``), padded to the model's stride multiples (8 in T, 32 in H and W:
  I3D's total strides), run, cropped back and resized to the input size; frames too large for
  memory are cut into overlapping spatial tiles that are cross-faded the same way;
* the N outputs of a window are re-ordered to match the previous window's on the shared frames
  (without overlap: on the last and first frame at the cut), taking the permutation with the lowest
  paper loss, so output k stays the same layer from the first frame to the last (the model itself
  has no notion of layer order); neighbouring tiles are re-ordered the same way on shared pixels;
* overlapping frames are cross-faded with triangular weights divided by their sum.

Memory is bounded by one window, not by the video. Everything runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from centrifuge.losses.pairwise import pairwise_l1_grad
from centrifuge.losses.pit import best_assignment
from centrifuge.models.fuse import fold_batchnorm
from centrifuge.video.clips import triangular_weights
from centrifuge.video.read import resized_shape
from centrifuge.video.transforms import pad_to_multiple, resize, shrink, unpad

__all__ = ["Separator", "align_order", "separate"]

ALIGN_SIDE = 96  # layer order is matched on frames resized to this short side


def align_order(pred: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Order of ``pred``'s layers that best matches ``reference`` (paper loss over shared frames).

    Shapes: pred ``[N, C, T, H, W]``, reference ``[N, C, T, H, W]`` -> int64 ``[N]`` such that
    ``pred[order]`` lines up with ``reference``.
    """
    # the order is plain to see at low resolution: compare there
    pred, reference = shrink(pred.float(), ALIGN_SIDE), shrink(reference.float(), ALIGN_SIDE)
    pw = pairwise_l1_grad(pred[None], reference[None])  # [1, N, N]
    _, match = best_assignment(pw)
    return match[0]


def _tiles(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    hop = tile - overlap
    starts = list(range(0, length - tile + 1, hop))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class Separator:
    """Applies a model to videos of any length and resolution.

    Args:
        model: a :class:`~centrifuge.models.CentrifugeNet` (put in eval mode here).
        clip_len: frames per window.
        overlap: frames shared by consecutive windows (cross-faded).
        size: process at this shortest side and resize the layers back (``None`` = native).
        tile: largest processed tile side in pixels; larger frames are tiled (``None`` = never).
        tile_overlap: pixels shared by neighbouring tiles.
        device: where the model runs; ``dtype`` bf16 autocast is used on CUDA when asked.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        clip_len: int = 32,
        overlap: int = 8,
        size: int | None = None,
        tile: int | None = None,
        tile_overlap: int = 32,
        device: torch.device | str = "cpu",
        bf16: bool = False,
        channels_last: bool = False,
    ) -> None:
        if clip_len < 1 or not 0 <= overlap < clip_len:
            raise ValueError(f"need clip_len > overlap >= 0, got {clip_len} and {overlap}")
        if tile is not None and not 0 < tile_overlap < tile:
            # neighbouring tiles are put in the same layer order by comparing the pixels they share
            raise ValueError(f"need tile > tile_overlap > 0, got {tile} and {tile_overlap}")
        self.device = torch.device(device)
        self.channels_last = channels_last
        # BatchNorm folded into the convolutions: one pass less over every feature map
        self.model = fold_batchnorm(model).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last_3d)
        self.clip_len, self.overlap, self.size = clip_len, overlap, size
        self.tile, self.tile_overlap = tile, tile_overlap
        self.bf16 = bf16 and self.device.type == "cuda"
        self.n_outputs, self.stride = model.n_outputs, model.stride

    # -- one window ---------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[C, t, h, w]`` (any size) -> ``[N, C, t, h, w]`` on the CPU, float32."""
        padded, orig = pad_to_multiple(x[None].to(self.device), self.stride)
        if self.channels_last:
            padded = padded.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.model(padded)
        return unpad(pred[0].float(), orig).cpu()

    def _forward_tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, t, h, w = x.shape
        tile = self.tile
        if tile is None or (h <= tile and w <= tile):
            return self._forward(x)
        out = torch.zeros(self.n_outputs, 3, t, h, w)
        weight = torch.zeros(1, 1, 1, h, w)
        for top in _tiles(h, tile, self.tile_overlap):
            for left in _tiles(w, tile, self.tile_overlap):
                th, tw = min(tile, h), min(tile, w)
                pred = self._forward(x[:, :, top : top + th, left : left + tw])
                region = (
                    slice(None),
                    slice(None),
                    slice(None),
                    slice(top, top + th),
                    slice(left, left + tw),
                )
                seen = weight[region] > 0
                if seen.any():  # align this tile's layer order to the tiles already placed
                    mask = seen.expand_as(pred)
                    done = out[region] / weight[region].clamp_min(1e-8)
                    order = align_order(pred * mask, done * mask)
                    pred = pred[order]
                wy = triangular_weights(th)[:, None]
                wx = triangular_weights(tw)[None, :]
                wt = (wy * wx).reshape(1, 1, 1, th, tw)
                out[region] += pred * wt
                weight[region] += wt
        return out / weight

    def window(self, frames: torch.Tensor) -> torch.Tensor:
        """Separate one window: ``[C, t, H, W]`` in ``[0, 1]`` -> ``[N, C, t, H, W]``."""
        _, _, h, w = frames.shape
        x = frames
        if self.size is not None:
            x = resize(frames, *resized_shape(h, w, self.size))
        with torch.inference_mode():
            pred = self._forward_tiled(x)
            if pred.shape[-2:] != (h, w):
                pred = resize(pred, h, w)
        return pred

    # -- a stream of windows ------------------------------------------------------------------
    def stream(
        self, windows: Iterable[tuple[int, torch.Tensor]]
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Separate successive windows ``(start, [C, t, H, W])`` that overlap by ``overlap`` frames
        (as :meth:`~centrifuge.video.read.VideoReader.windows` yields them).

        Yields ``(start, layers [N, C, t', H, W], frames [C, t', H, W])``: finished layer frames
        with the input frames they come from, in order, each frame exactly once.
        """
        pending: torch.Tensor | None = None  # weighted sums of frames not finished yet
        pending_w: torch.Tensor | None = None
        pending_in: torch.Tensor | None = None  # the input frames of ``pending``
        pending_start = 0
        previous: torch.Tensor | None = None  # last window's (reordered) outputs
        previous_start = 0
        for start, frames in windows:
            pred = self.window(frames)  # [N, C, t, H, W]
            t = pred.shape[2]
            if previous is not None:
                # align on the frames both windows hold; without overlap, on either side of the cut
                offset = start - previous_start
                shared = min(previous.shape[2] - offset, t)
                if shared > 0:
                    reference = previous[:, :, offset : offset + shared]
                    order = align_order(pred[:, :, :shared], reference)
                else:
                    order = align_order(pred[:, :, :1], previous[:, :, -1:])
                pred = pred[order]
            weights = triangular_weights(t).reshape(1, 1, t, 1, 1)
            if pending is None:
                pending, pending_w, pending_start = pred * weights, weights.clone(), start
                pending_in = frames
            else:
                offset = start - pending_start
                grow = offset + t - pending.shape[2]
                if grow > 0:
                    pending = F.pad(pending, (0, 0, 0, 0, 0, grow))
                    pending_w = F.pad(pending_w, (0, 0, 0, 0, 0, grow))
                    pending_in = torch.cat([pending_in, frames[:, t - grow :]], dim=1)
                pending[:, :, offset : offset + t] += pred * weights
                pending_w[:, :, offset : offset + t] += weights
            previous, previous_start = pred, start
            # frames before the next window's first frame will not change any more
            done = start + t - self.overlap - pending_start
            if done > 0:
                yield (
                    pending_start,
                    pending[:, :, :done] / pending_w[:, :, :done],
                    pending_in[:, :done],
                )
                pending, pending_w = pending[:, :, done:].clone(), pending_w[:, :, done:].clone()
                pending_in = pending_in[:, done:]
                pending_start += done
        if pending is not None and pending.shape[2] > 0:
            yield pending_start, pending / pending_w, pending_in


def separate(
    model: torch.nn.Module,
    frames: torch.Tensor,
    *,
    clip_len: int = 32,
    overlap: int = 8,
    size: int | None = None,
    tile: int | None = None,
    tile_overlap: int = 32,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Separate an in-memory video into the model's N layers (consistent order over time).

    Args:
        model: a :class:`~centrifuge.models.CentrifugeNet`.
        frames: ``[C, T, H, W]`` floats in ``[0, 1]``, any T, H, W.
        clip_len, overlap, size, tile, tile_overlap, device: see :class:`Separator`.
        progress: called with ``(frames done, total frames)``.

    Returns:
        ``[N, C, T, H, W]`` float32 (not clamped).
    """
    sep = Separator(
        model,
        clip_len=clip_len,
        overlap=overlap,
        size=size,
        tile=tile,
        tile_overlap=tile_overlap,
        device=device,
    )
    total = frames.shape[1]
    hop = clip_len - overlap

    def windows() -> Iterator[tuple[int, torch.Tensor]]:
        start = 0
        while True:
            yield start, frames[:, start : start + clip_len]
            if start + clip_len >= total:
                return
            start += hop

    chunks = []
    for start, chunk, _ in sep.stream(windows()):
        chunks.append(chunk)
        if progress is not None:
            progress(start + chunk.shape[2], total)
    return torch.cat(chunks, dim=2)
