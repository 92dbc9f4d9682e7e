"""Decoded pictures -> arrays and tensors: the one place where ``uint8`` ``[H, W, 3]`` pictures
become float32 channel-first ``[C, T, H, W]`` in ``[0, 1]``."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from centrifuge.errors import VideoError
from centrifuge.video.container import INPUT_ERRORS
from centrifuge.video.orientation import IDENTITY, Orientation, orient, stored_shape

__all__ = ["to_array", "to_frames_tensor"]


def to_array(
    path: Path,
    frame: av.VideoFrame,
    shape: tuple[int, int] | None,
    reformatter: VideoReformatter | None = None,
    turn: Orientation = IDENTITY,
) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB as shown (turned by ``turn``), resized to ``shape = (H, W)``; a
    frame FFmpeg cannot convert is the input's error. Pass one ``reformatter`` for all the frames
    of a stream: it keeps the colour converter instead of building one per frame."""
    reformatter = reformatter or VideoReformatter()
    height, width = stored_shape(shape, turn) if shape else (frame.height, frame.width)
    shrinking = height * width < frame.height * frame.width
    try:
        rgb = reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation="AREA" if shrinking else "BICUBIC",
        )
        return orient(rgb.to_ndarray(), turn)
    except INPUT_ERRORS as exc:
        raise VideoError(
            f"{path}: a frame cannot be converted ({exc.__class__.__name__}: "
            f"{frame.width}x{frame.height} {frame.format.name})."
        ) from exc


def to_frames_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` pictures -> float32 ``[C, T, H, W]`` in ``[0, 1]``."""
    return torch.from_numpy(np.stack(arrays)).permute(3, 0, 1, 2).float().div_(255.0)
