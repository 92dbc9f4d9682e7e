"""Reading videos on PyAV (FFmpeg): :class:`VideoReader` and :func:`read_video`.

Decoded pictures are ``uint8`` ``[H, W, 3]`` only inside this package: everything it returns is
``float32`` channel-first in ``[0, 1]``, a frame ``[C, H, W]`` or a clip ``[C, T, H, W]``, upright
as players show it (:mod:`~centrifuge.video.orientation`).

Inputs can be any file FFmpeg decodes, a single image, or a folder of numbered images (natural
sort). Reading from frame ``start`` of a long file seeks to the key frame before it instead of
decoding from the start, and :class:`VideoReader` streams successive windows with memory bounded by
the window. What an input holds is probed first (:mod:`~centrifuge.video.probe`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from centrifuge.errors import VideoError
from centrifuge.video.clips import sliding_windows
from centrifuge.video.container import IMAGE_EXTENSIONS, INPUT_ERRORS, VIDEO_EXTENSIONS
from centrifuge.video.convert import to_array, to_frames_tensor
from centrifuge.video.decode import decode_frames
from centrifuge.video.images import IMAGE_FOLDER_FPS, decode_image, image_sequence
from centrifuge.video.probe import VideoInfo, probe_video, resized_shape

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_FOLDER_FPS",
    "INPUT_ERRORS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReader",
    "probe_video",
    "read_video",
    "resized_shape",
    "to_frames_tensor",
]


class VideoReader:
    """Sequential decoder of one video (or image folder) with a fixed output size.

    :meth:`frames` (and iterating) yields frames ``[C, H, W]``, :meth:`read` returns a clip
    ``[C, T, H, W]`` and :meth:`windows` yields overlapping clips with memory bounded by the window
    length: all float32 in ``[0, 1]``, and all from one decoding loop.

    Args:
        path: video file, image file or folder of numbered images.
        size: shortest side of the returned frames (``None`` keeps the native size).
        shape: exact ``(H, W)`` of the returned frames; overrides ``size``.

    Raises:
        VideoError: missing, empty or corrupt input, or no video stream (when opened); corrupt or
        truncated data, or no decodable frame (while reading).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        size: int | None = None,
        shape: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.info = probe_video(self.path)
        self.shape = shape or resized_shape(self.info.height, self.info.width, size)
        self._images = image_sequence(self.path)

    def _pictures(self, start: int, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """uint8 ``[H, W, 3]`` pictures of frames ``start, start + step, ...`` before ``stop``."""
        if self._images is not None:
            indexed = ((i, file) for i, file in enumerate(self._images) if i >= start)
        else:
            indexed = decode_frames(self.path, start, self.info)
        reformatter = VideoReformatter()
        yielded = 0
        for index, item in indexed:
            if stop is not None and index >= stop:
                break
            if (index - start) % step:
                continue
            yielded += 1
            if isinstance(item, Path):
                yield decode_image(item, self.shape)
            else:
                yield to_array(self.path, item, self.shape, reformatter, self.info.turn)
        if yielded == 0 and start == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (corrupt or truncated data).")

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[torch.Tensor]:
        """Yield frames ``[C, H, W]`` (float32 in ``[0, 1]``) from frame index ``start`` on."""
        for picture in self._pictures(start):
            yield torch.from_numpy(picture).permute(2, 0, 1).float().div_(255.0)  # [C, H, W]

    def read(self, start: int = 0, num_frames: int | None = None, stride: int = 1) -> torch.Tensor:
        """Frames ``start, start + stride, ...`` (``num_frames`` of them, or to the end) as one clip
        ``[C, T, H, W]``: the same frames as :meth:`frames`, stacked on T.

        Raises:
            VideoError: an invalid window, or no frame at ``start`` or after.
        """
        if start < 0 or stride < 1 or (num_frames is not None and num_frames < 1):
            raise VideoError(
                f"invalid window: start={start}, num_frames={num_frames}, stride={stride}."
            )
        stop = None if num_frames is None else start + num_frames * stride
        pictures = list(self._pictures(start, stop, stride))
        if not pictures:
            raise VideoError(
                f"{self.path}: no frame at index {start} or after "
                f"(the video has {self.info.frames})."
            )
        return to_frames_tensor(pictures)

    def windows(self, clip_len: int, overlap: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, frames [C, T, H, W])`` windows of ``clip_len`` frames overlapping by
        ``overlap``, as :func:`~centrifuge.video.clips.sliding_windows` cuts them (the last one is
        shorter when the video ends), holding the pictures of one window as uint8.

        Raises:
            VideoError: ``clip_len > overlap >= 0`` does not hold.
        """
        if clip_len <= 0 or not 0 <= overlap < clip_len:
            raise VideoError(
                f"need clip_len > overlap >= 0, got clip_len={clip_len}, overlap={overlap}."
            )
        for start, pictures in sliding_windows(self._pictures(0), clip_len, overlap):
            yield start, to_frames_tensor(pictures)


def read_video(
    path: str | os.PathLike,
    *,
    start: int = 0,
    num_frames: int | None = None,
    stride: int = 1,
    size: int | None = None,
    shape: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, float]:
    """Decode frames ``start, start + stride, ...`` (``num_frames`` of them, or to the end).

    Only the requested window is decoded: the reader seeks to the key frame before ``start``.

    Args:
        path: video file, image file or folder of numbered images.
        start: index of the first frame.
        num_frames: how many frames to return (fewer when the video ends first); ``None`` = all.
        stride: keep every ``stride``-th frame.
        size: resize so that the shortest side is ``size`` pixels (aspect kept).
        shape: resize to exactly ``(H, W)``; overrides ``size``.

    Returns:
        ``(frames, fps)``: frames ``[C, T, H, W]`` float32 in ``[0, 1]`` and the native frame rate.

    Raises:
        VideoError: missing, empty, corrupt or truncated input, no video stream, or no frame in
            range.
    """
    reader = VideoReader(path, size=size, shape=shape)
    return reader.read(start, num_frames, stride), reader.info.fps
