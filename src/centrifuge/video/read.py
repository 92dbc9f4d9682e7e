"""Reading videos on PyAV (FFmpeg): :func:`probe_video`, :class:`VideoReader`, :func:`read_video`.

Decoded pictures are ``uint8`` ``[H, W, 3]`` only inside this module: everything it returns is
``float32`` channel-first in ``[0, 1]``, a frame ``[C, H, W]`` or a clip ``[C, T, H, W]``.

Inputs can be any file FFmpeg decodes, a single image, or a folder of numbered images (natural
sort). Reading from frame ``start`` of a long file seeks to the key frame before it instead of
decoding from the start, and :class:`VideoReader` streams successive windows with memory bounded by
the window.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from centrifuge.errors import VideoError
from centrifuge.video.clips import sliding_windows

__all__ = [
    "IMAGE_EXTENSIONS",
    "INPUT_ERRORS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReader",
    "probe_video",
    "read_video",
    "resized_shape",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"}
    | {".wmv", ".flv", ".gif", ".ts"}
)
IMAGE_FOLDER_FPS = 25.0
MIN_FPS, MAX_FPS = 0.01, 240.0  # frame rates outside this range mean broken timestamps
MIN_SIDE = 2  # frames narrower or lower than this are refused
# What reading an input may raise besides our own errors: FFmpeg's errors, the OS's, PyAV's
# argument and metadata decoding errors. All of them mean the input cannot be read.
INPUT_ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeError, EOFError)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns without decoding pixels.

    ``frames`` comes from the container's index (or a packet count when the container has none); it
    can exceed the decodable count by a frame or two on damaged files. ``rate_source`` says where
    ``rate`` comes from: ``"container"``, ``"duration"`` (frames over duration, when the container's
    rate is implausible, as for variable-rate files) or ``"assumed"`` (timestamps too broken for
    either: :data:`IMAGE_FOLDER_FPS`). Frames are always read in decoding order, never placed by
    their timestamps, when the rate is not the container's.
    """

    path: str
    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    rate: Fraction
    rate_source: str = "container"

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0


def resized_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """``(H, W)`` after resizing the shortest side to ``size`` (aspect kept; ``None``: as is)."""
    if size is None:
        return height, width
    if size <= 0:
        raise VideoError(f"size must be a positive number of pixels, got {size}.")
    scale = size / min(height, width)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def _image_sequence(path: Path) -> list[Path] | None:
    """The pictures of an image input (a folder of numbered images, or one image), in order;
    ``None`` for a video file."""
    if not path.is_dir():
        return [path] if path.suffix.lower() in IMAGE_EXTENSIONS else None
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _check_exists(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file or folder.") from None
    except OSError as exc:
        raise VideoError(f"{path}: cannot be read ({exc.strerror}).") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a FIFO or a device may never end
        raise VideoError(f"{path}: not a regular file or folder (a pipe, socket or device).")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: cannot be read (permission denied).")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty.")
    if path.is_dir() and not _image_sequence(path):
        raise VideoError(
            f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})."
        )


def _check_size(path: Path, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VideoError(
            f"{path}: frames of {width}x{height} pixels are too small "
            f"(at least {MIN_SIDE}x{MIN_SIDE} are needed)."
        )


@contextlib.contextmanager
def _open_container(path: Path) -> Iterator[av.container.InputContainer]:
    try:
        container = av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.FileNotFoundError as exc:
        raise VideoError(f"{path}: no such file.") from exc
    except av.error.InvalidDataError as exc:
        raise VideoError(
            f"{path}: not a readable video or image (corrupt or unknown format)."
        ) from exc
    except INPUT_ERRORS as exc:
        raise VideoError(f"{path}: cannot be opened ({exc.__class__.__name__}).") from exc
    try:
        yield container
    finally:
        container.close()


def _video_stream(
    container: av.container.InputContainer, path: Path
) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: the file has no video stream.")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: the video stream's codec is unknown (corrupt or unsupported).")
    return stream


def _plausible(rate: Fraction | None) -> bool:
    return rate is not None and MIN_FPS <= rate <= MAX_FPS


def _stream_rate(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, frames: int
) -> tuple[Fraction, str]:
    """``(rate, source)``: the container's rate if plausible, else frames over the duration, else
    :data:`IMAGE_FOLDER_FPS` (see :class:`VideoInfo`)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = Fraction(rate) if rate else None
    if _plausible(rate):
        return rate, "container"
    seconds = None
    if stream.duration and stream.time_base:
        seconds = Fraction(stream.duration) * stream.time_base
    elif container.duration:
        seconds = Fraction(container.duration, av.time_base)
    if seconds and frames > 1:
        estimate = Fraction(frames / float(seconds)).limit_denominator(1001)
        if _plausible(estimate):
            return estimate, "duration"
    return Fraction(IMAGE_FOLDER_FPS), "assumed"


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read frame count, frame rate, size and whether there is audio, without decoding pixels.

    Raises:
        VideoError: missing file, not a media file, no video stream, or no frames.
    """
    path = Path(path)
    _check_exists(path)
    images = _image_sequence(path)
    if images is not None:
        height, width = _decode_image(images[0]).shape[:2]
        _check_size(path, width, height)
        rate = Fraction(IMAGE_FOLDER_FPS)
        return VideoInfo(str(path), len(images), IMAGE_FOLDER_FPS, width, height, False, rate)
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        try:
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            rate, source = _stream_rate(container, stream, frames)
        except INPUT_ERRORS as exc:
            raise VideoError(f"{path}: corrupt video data ({exc.__class__.__name__}).") from exc
        if frames <= 0:
            raise VideoError(f"{path}: the video stream holds no frames.")
        _check_size(path, width, height)
        audio = bool(container.streams.audio)
        return VideoInfo(str(path), int(frames), float(rate), width, height, audio, rate, source)


def _decode_image(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 ``[H, W, 3]`` (resized to ``shape = (H, W)`` when given)."""
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        try:
            frame = next(container.decode(stream))
        except StopIteration:
            raise VideoError(f"{path}: the image holds no decodable picture.") from None
        except INPUT_ERRORS as exc:
            raise VideoError(f"{path}: the image is corrupt ({exc.__class__.__name__}).") from exc
        return _to_array(path, frame, shape)


def _to_array(
    path: Path,
    frame: av.VideoFrame,
    shape: tuple[int, int] | None,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB, resized to ``shape``; a frame FFmpeg cannot convert is the input's
    error. Pass one ``reformatter`` for all the frames of a stream: it keeps the colour converter
    instead of building one per frame."""
    reformatter = reformatter or VideoReformatter()
    height, width = shape or (frame.height, frame.width)
    shrinking = height * width < frame.height * frame.width
    try:
        rgb = reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation="AREA" if shrinking else "BICUBIC",
        )
        return rgb.to_ndarray()
    except INPUT_ERRORS as exc:
        raise VideoError(
            f"{path}: a frame cannot be converted ({exc.__class__.__name__}: "
            f"{frame.width}x{frame.height} {frame.format.name})."
        ) from exc


def to_frames_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` pictures -> float32 ``[C, T, H, W]`` in ``[0, 1]``."""
    return torch.from_numpy(np.stack(arrays)).permute(3, 0, 1, 2).float().div_(255.0)


def _decode_frames(path: Path, start: int, info: VideoInfo) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(index, frame)`` from ``start`` on.

    From the first frame, or when the input's timestamps are not to be trusted
    (``info.rate_source != "container"``), frames are counted in decoding order. Otherwise, for
    ``start > 0``, decoding seeks to the key frame before ``start``, and the index of a frame is its
    presentation time from the stream's first frame times the frame rate, so it does not depend on
    where decoding began.
    """
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = info.rate
        time_base = stream.time_base or Fraction(1, 1)
        first_pts = stream.start_time or 0
        by_time = start > 0 and info.rate_source == "container"
        expected = info.frames
        sequential = 0
        try:
            if by_time:
                target = first_pts + int((Fraction(start) / rate) / time_base)
                container.seek(target, stream=stream, backward=True, any_frame=False)
                sequential = start
            for frame in container.decode(stream):
                index = sequential
                if by_time and frame.pts is not None:
                    index = round((frame.pts - first_pts) * time_base * rate)
                sequential = index + 1
                if index < start:
                    continue
                yield index, frame
        except av.error.EOFError:
            pass
        except INPUT_ERRORS as exc:
            raise VideoError(
                f"{path}: corrupt or truncated video data ({exc.__class__.__name__})."
            ) from exc
        # The index promised more frames than the data holds: the file was cut short.
        if expected and sequential < expected - max(2, expected // 20):
            raise VideoError(
                f"{path}: truncated video data (decoded {sequential} of {expected} frames)."
            )


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
        self._images = _image_sequence(self.path)

    def _pictures(self, start: int, stop: int | None = None, step: int = 1) -> Iterator[np.ndarray]:
        """uint8 ``[H, W, 3]`` pictures of frames ``start, start + step, ...`` before ``stop``."""
        if self._images is not None:
            indexed = ((i, file) for i, file in enumerate(self._images) if i >= start)
        else:
            indexed = _decode_frames(self.path, start, self.info)
        reformatter = VideoReformatter()
        yielded = 0
        for index, item in indexed:
            if stop is not None and index >= stop:
                break
            if (index - start) % step:
                continue
            yielded += 1
            if isinstance(item, Path):
                yield _decode_image(item, self.shape)
            else:
                yield _to_array(self.path, item, self.shape, reformatter)
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
