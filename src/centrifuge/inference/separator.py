"""Separating videos of any length and size: windows in time, tiles in space, stable layer order.

:class:`Separator` runs a model over successive windows of ``clip_len`` frames that overlap by
``overlap`` frames:

* each window is resized (``size``), padded in time to a multiple of the model's temporal stride
  (8), run at its own height and width (the encoder's SAME padding takes any size; replicating
  the last row and column up to 32-px multiples, as before issue 22, cost 0.009x identity on the
  written score: bench/RESULTS.md), cropped back and resized to the input size; frames too large
  for memory are cut into overlapping spatial tiles that are cross-faded the same way;
* the N outputs of a window are re-ordered to match the previous window's on the shared frames
  (without overlap: on the last and first frame at the cut), taking the permutation with the lowest
  paper loss, so output k stays the same layer from the first frame to the last (the model itself
  has no notion of layer order); neighbouring tiles are re-ordered the same way on shared pixels;
* overlapping frames are cross-faded with triangular weights divided by their sum.

Memory is bounded by one window, not by the video. Everything runs under ``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from centrifuge import defaults
from centrifuge.inference.detail import add_upsampled_difference
from centrifuge.inference.engine import compile_model
from centrifuge.inference.prefetch import prefetch
from centrifuge.inference.report import STATS_SIDE
from centrifuge.losses.pairwise import pairwise_l1_grad
from centrifuge.losses.pit import best_assignment
from centrifuge.models.centrifuge import CentrifugeNet
from centrifuge.video.clips import (
    OverlapAdd,
    tile_starts,
    triangular_weights,
    window_starts,
)
from centrifuge.video.read import VideoReader, resized_shape
from centrifuge.video.transforms import pad_to_multiple, resize, shrink, unpad

__all__ = ["Separator", "SizePlan", "align_order", "separate"]


def align_order(pred: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Order of ``pred``'s layers that best matches ``reference`` (paper loss over shared frames).

    Shapes: pred ``[N, C, T, H, W]``, reference ``[N, C, T, H, W]`` -> int64 ``[N]`` such that
    ``pred[order]`` lines up with ``reference``.
    """
    # the order is plain to see at low resolution: compare there
    pred, reference = shrink(pred.float(), STATS_SIDE), shrink(reference.float(), STATS_SIDE)
    pw = pairwise_l1_grad(pred[None], reference[None])  # [1, N, N]
    _, match = best_assignment(pw)
    return match[0]


@dataclass(frozen=True)
class SizePlan:
    """The shapes of one input, planned by :meth:`Separator.plan`.

    Attributes:
        output: ``(H, W)`` the layers are made at: the input's own size for a residual model at a
            reduced size (its predicted differences are added to the full-size frames), else
            ``process``.
        process: ``(h, w)`` the model sees (before padding to its strides); a video's windows are
            decoded at this size.
        side: the size to report: ``size`` as given, the short side ``auto`` chose, or
            ``"native"``.
    """

    output: tuple[int, int]
    process: tuple[int, int]
    side: int | str


class Separator:
    """Applies a model to videos of any length and resolution: the one owner of windowing.

    Args:
        model: a :class:`~centrifuge.models.CentrifugeNet` (put in eval mode here).
        clip_len: frames per window.
        overlap: frames shared by consecutive windows (cross-faded).
        size: process at this shortest side (``None`` = native; ``"auto"``, the default
            :data:`~centrifuge.defaults.SIZE`: a short side of
            :data:`~centrifuge.defaults.AUTO_SIDE` for a residual model (native when smaller),
            else native;
            :meth:`plan` gives the shapes of an input); the layers come back at the size of the
            frames given: for a residual model the predicted differences are upsampled onto the
            frames (:func:`~centrifuge.inference.detail.add_upsampled_difference`), else the
            layers are resized.
        tile: largest processed tile side in pixels; larger frames are tiled (``None`` = never).
        tile_overlap: pixels shared by neighbouring tiles.
        device: where the model runs.
        precision: ``auto``, ``f32`` or ``bf16``
            (:func:`~centrifuge.inference.engine.compile_model`; ``auto``: bf16 on CUDA, and in
            OpenVINO on CPUs with native bf16).
        backend: how a :class:`~centrifuge.models.CentrifugeNet` runs, one of
            :data:`~centrifuge.defaults.BACKENDS` (:mod:`~centrifuge.inference.engine`); other
            modules run in eager torch. Every window goes through the engine's :attr:`runner`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        clip_len: int = defaults.CLIP_LEN,
        overlap: int = defaults.OVERLAP,
        size: defaults.Size = defaults.SIZE,
        tile: int | None = defaults.TILE,
        tile_overlap: int = defaults.TILE_OVERLAP,
        device: torch.device | str = "cpu",
        precision: str = "auto",
        backend: str = defaults.BACKEND,
    ) -> None:
        if clip_len < 1 or not 0 <= overlap < clip_len:
            raise ValueError(f"need clip_len > overlap >= 0, got {clip_len} and {overlap}")
        if tile is not None and not 0 < tile_overlap < tile:
            # neighbouring tiles are put in the same layer order by comparing the pixels they share
            raise ValueError(f"need tile > tile_overlap > 0, got {tile} and {tile_overlap}")
        self.device = torch.device(device)
        self.clip_len, self.overlap, self.size = clip_len, overlap, defaults.parse_size(size)
        self.tile, self.tile_overlap = tile, tile_overlap
        self.n_outputs, self.stride = model.n_outputs, model.stride
        # a residual model's layers are the input plus a difference: processed smaller, only the
        # difference is upsampled, so the layers keep the input's detail
        self.residual = bool(getattr(model, "residual", False))
        if not isinstance(model, CentrifugeNet):  # export is for the registry's models
            backend = "torch" if backend in defaults.BACKENDS else backend  # checked by the engine
        # the model's forward pass, on every device; prepared per shape on first use
        self.runner = compile_model(model, backend=backend, precision=precision, device=self.device)
        self.backend = self.runner.backend

    def plan(self, height: int, width: int) -> SizePlan:
        """The shapes for frames of ``height x width``: what the model sees, what the layers are
        made at and the size to report (the one owner of ``size``)."""
        process = self._processing_shape(height, width)
        reduced = process[0] * process[1] < height * width
        output = (height, width) if self.residual and reduced else process
        if isinstance(self.size, int):
            side: int | str = self.size
        else:
            side = "native" if process == (height, width) else min(process)
        return SizePlan(output=output, process=process, side=side)

    def _processing_shape(self, height: int, width: int) -> tuple[int, int]:
        size = self.size
        if size == "auto":
            short = min(height, width)
            size = defaults.AUTO_SIDE if self.residual else None
            size = None if size is not None and size >= short else size
        return resized_shape(height, width, size)

    # -- one window ---------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[C, t, h, w]`` (any size) -> ``[N, C, t, h, w]`` on the CPU, float32."""
        padded, orig = pad_to_multiple(x[None].to(self.device), (self.stride[0], 1, 1))
        return unpad(self.runner(padded)[0], orig)

    def _forward_tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, t, h, w = x.shape
        tile = self.tile
        if tile is None or (h <= tile and w <= tile):
            return self._forward(x)
        acc = OverlapAdd.on_canvas((self.n_outputs, 3, t, h, w), (1, 1, 1, h, w))
        th, tw = min(tile, h), min(tile, w)
        wt = (triangular_weights(th)[:, None] * triangular_weights(tw)[None, :]).reshape(
            1, 1, 1, th, tw
        )
        for top in tile_starts(h, tile, self.tile_overlap):
            for left in tile_starts(w, tile, self.tile_overlap):
                region = (..., slice(top, top + th), slice(left, left + tw))
                pred = self._forward(x[region])
                done, seen = acc.covered(region)
                if seen.any():  # align this tile's layer order to the tiles already placed
                    mask = seen.expand_as(pred)
                    pred = pred[align_order(pred * mask, done * mask)]
                acc.add(region, pred, wt)
        return acc.finished()

    def window(self, frames: torch.Tensor) -> torch.Tensor:
        """Separate one window: ``[C, t, H, W]`` in ``[0, 1]`` -> ``[N, C, t, H, W]``."""
        _, _, h, w = frames.shape
        x = resize(frames, *self._processing_shape(h, w))
        with torch.inference_mode():
            pred = self._forward_tiled(x)
            if pred.shape[-2:] != (h, w):
                if self.residual and x.shape[-2] <= h and x.shape[-1] <= w:
                    return add_upsampled_difference(pred, x, frames)
                pred = resize(pred, h, w)
        return pred

    # -- a whole video ------------------------------------------------------------------------
    def windows(self, source: VideoReader | torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """``(start, frames [C, t, H, W])`` windows of ``clip_len`` frames overlapping by
        ``overlap`` (:func:`~centrifuge.video.clips.window_starts`), cut from a reader (decoded in
        a background thread, up to two windows ahead) or from frames ``[C, T, H, W]`` in memory."""
        if isinstance(source, torch.Tensor):
            for start in window_starts(source.shape[1], self.clip_len, self.overlap):
                yield start, source[:, start : start + self.clip_len]
            return
        yield from prefetch(source.windows(self.clip_len, self.overlap))

    def stream(
        self, source: VideoReader | torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Separate a whole video window by window (:meth:`windows`).

        Yields ``(start, layers [N, C, t', H, W], frames [C, t', H, W])``: finished layer frames
        with the input frames they come from, in order, each frame exactly once. Memory is bounded
        by one window.
        """
        layers = OverlapAdd(dim=2)
        inputs: list[torch.Tensor] = []  # input frames of what ``layers`` holds, one per frame
        previous: torch.Tensor | None = None  # last window's (reordered) outputs
        previous_start = 0
        windows = self.windows(source)
        try:
            for start, frames in windows:
                pred = self.window(frames)  # [N, C, t, H, W]
                if previous is not None:
                    pred = pred[_order_after(pred, previous, start - previous_start)]
                t = pred.shape[2]
                inputs.extend(frames[:, max(0, layers.end - start) :].unbind(1))
                layers.add(start, pred, triangular_weights(t).reshape(1, 1, t, 1, 1))
                previous, previous_start = pred, start
                # frames before the next window's first frame will not change any more
                yield from _finished(layers, inputs, start + t - self.overlap)
            yield from _finished(layers, inputs, None)
        finally:
            windows.close()


def _order_after(pred: torch.Tensor, previous: torch.Tensor, offset: int) -> torch.Tensor:
    """Order of a window's outputs ``[N, C, t, H, W]`` that continues ``previous`` (the window
    starting ``offset`` frames earlier): matched on the frames both hold, or without overlap on
    either side of the cut."""
    shared = min(previous.shape[2] - offset, pred.shape[2])
    if shared > 0:
        return align_order(pred[:, :, :shared], previous[:, :, offset : offset + shared])
    return align_order(pred[:, :, :1], previous[:, :, -1:])


def _finished(
    layers: OverlapAdd, inputs: list[torch.Tensor], upto: int | None
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    start = layers.start
    done = layers.pop_finished(upto)
    if done is not None:
        t = done.shape[2]
        yield start, done, torch.stack(inputs[:t], dim=1)
        del inputs[:t]


def separate(
    model: torch.nn.Module,
    frames: torch.Tensor,
    *,
    clip_len: int = defaults.CLIP_LEN,
    overlap: int = defaults.OVERLAP,
    size: defaults.Size = defaults.SIZE,
    tile: int | None = defaults.TILE,
    tile_overlap: int = defaults.TILE_OVERLAP,
    device: torch.device | str = "cpu",
    backend: str = defaults.BACKEND,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Separate an in-memory video into the model's N layers (consistent order over time).

    Args:
        model: a :class:`~centrifuge.models.CentrifugeNet`.
        frames: ``[C, T, H, W]`` floats in ``[0, 1]``, any T, H, W.
        clip_len, overlap, size, tile, tile_overlap, device, backend: see :class:`Separator`.
        progress: called with ``(frames done, total frames)``.

    Returns:
        ``[N, C, T, H, W]`` float32 (not clamped), at the size of ``frames``.
    """
    sep = Separator(
        model,
        clip_len=clip_len,
        overlap=overlap,
        size=size,
        tile=tile,
        tile_overlap=tile_overlap,
        device=device,
        backend=backend,
    )
    total = frames.shape[1]
    chunks = []
    for start, chunk, _ in sep.stream(frames):
        chunks.append(chunk)
        if progress is not None:
            progress(start + chunk.shape[2], total)
    return torch.cat(chunks, dim=2)
