"""Blend video files into one video file, streaming frame by frame (``centrifuge blend``)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from centrifuge.errors import CentrifugeError
from centrifuge.video.read import VideoReader, probe_video, resized_shape
from centrifuge.video.write import VideoWriter

__all__ = ["blend_files"]


def _cover_shape(h: int, w: int, target: tuple[int, int]) -> tuple[int, int]:
    scale = max(target[0] / h, target[1] / w)
    return max(target[0], math.ceil(h * scale - 1e-9)), max(target[1], math.ceil(w * scale - 1e-9))


def _center(frame: torch.Tensor, target: tuple[int, int]) -> torch.Tensor:
    """The centre ``target = (H, W)`` crop of a frame ``[C, H', W']``."""
    h, w = frame.shape[-2:]
    top, left = (h - target[0]) // 2, (w - target[1]) // 2
    return frame[:, top : top + target[0], left : left + target[1]]


def blend_files(
    inputs: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    *,
    weights: Sequence[float] | None = None,
    frames: int | None = None,
    size: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``sum_k w_k V_k`` of the input videos to ``output`` (H.264 MP4).

    The output has the first input's frame rate and size (shortest side ``size`` when given); the
    other inputs are resized to cover that size and centre-cropped. It is cut to the shortest input
    (or to ``frames``). ``weights`` default to ``1/K`` and must be non-negative and sum to 1.
    Memory stays at one frame per input.
    """
    if len(inputs) < 2:
        raise CentrifugeError("blend needs at least two input videos.")
    w = np.full(len(inputs), 1.0 / len(inputs)) if weights is None else np.asarray(weights, float)
    if len(w) != len(inputs):
        raise CentrifugeError(f"{len(w)} weights given for {len(inputs)} inputs.")
    if (w < 0).any() or not math.isclose(w.sum(), 1.0, abs_tol=1e-6):
        raise CentrifugeError(f"blend weights must be non-negative and sum to 1, got {list(w)}.")
    infos = [probe_video(p) for p in inputs]
    target = resized_shape(infos[0].height, infos[0].width, size)
    count = min(i.frames for i in infos)
    if frames is not None:
        if frames < 1:
            raise CentrifugeError(f"--frames must be positive, got {frames}.")
        count = min(count, frames)
    readers = [
        VideoReader(p, shape=_cover_shape(i.height, i.width, target)).frames()
        for p, i in zip(inputs, infos)
    ]
    writer = VideoWriter(
        output, fps=infos[0].rate, width=target[1], height=target[0], overwrite=overwrite
    )
    try:
        for t in range(count):
            try:
                layer_frames = [_center(next(r), target) for r in readers]
            except StopIteration:
                break
            mixed = sum(float(wk) * f for wk, f in zip(w, layer_frames))  # [C, H, W]
            writer.write(mixed[:, None])
            if progress is not None:
                progress(t + 1, count)
        return writer.close()
    except BaseException:
        writer.abort()
        raise
