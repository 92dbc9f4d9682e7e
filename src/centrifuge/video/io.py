"""Video input and output on PyAV (FFmpeg).

The only module that sees frames as ``uint8`` ``[T, H, W, 3]``: everything it returns to the rest
of the
package is ``float32`` channel-first ``[C, T, H, W]`` in ``[0, 1]``.

Inputs can be any file FFmpeg decodes, a single image, or a folder of numbered images (natural
sort).
Reading a window of a long file seeks to the key frame before it instead of decoding from the start,
and :class:`VideoReader` streams successive windows with memory bounded by the window.

Outputs are H.264 in MP4 (yuv420p, playable everywhere), written to a hidden temporary file beside
the
target and renamed into place when complete, so an interrupted write never leaves a partial file
under
the final name. Odd widths and heights are padded by one replicated pixel row or column, because
4:2:0 chroma needs even sizes.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from centrifuge.errors import OutputExistsError, VideoError
from centrifuge.utils import publish

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".mpg",
        ".mpeg",
        ".wmv",
        ".flv",
        ".gif",
        ".ts",
    }
)
IMAGE_FOLDER_FPS = 25.0
MIN_FPS, MAX_FPS = 0.01, 240.0  # frame rates outside this range mean broken timestamps
MIN_SIDE = 2  # frames narrower or lower than this are refused
# What reading an input may raise besides our own errors: FFmpeg's errors, the OS's, PyAV's
# argument and metadata decoding errors. All of them mean the input cannot be read.
_INPUT_ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeError, EOFError)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "probe_video",
    "read_video",
    "resized_shape",
    "to_uint8_frames",
    "write_video",
]


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


def _image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _is_image_source(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in IMAGE_EXTENSIONS


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
    if path.is_dir() and not _image_files(path):
        raise VideoError(
            f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})."
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
    except _INPUT_ERRORS as exc:
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


def _count_packets(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    return sum(1 for packet in container.demux(stream) if packet.size)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read frame count, frame rate, size and whether there is audio, without decoding pixels.

    Raises:
        VideoError: missing file, not a media file, no video stream, or no frames.
    """
    path = Path(path)
    _check_exists(path)
    if _is_image_source(path):
        files = _image_files(path) if path.is_dir() else [path]
        first = _decode_image(files[0])
        _check_size(path, first.shape[1], first.shape[0])
        return VideoInfo(
            str(path),
            len(files),
            IMAGE_FOLDER_FPS,
            first.shape[1],
            first.shape[0],
            False,
            Fraction(IMAGE_FOLDER_FPS),
        )
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        try:
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = stream.frames or _count_packets(container, stream)
            rate, source = _stream_rate(container, stream, frames)
        except _INPUT_ERRORS as exc:
            raise VideoError(f"{path}: corrupt video data ({exc.__class__.__name__}).") from exc
        if frames <= 0:
            raise VideoError(f"{path}: the video stream holds no frames.")
        _check_size(path, width, height)
        return VideoInfo(
            str(path),
            int(frames),
            float(rate),
            width,
            height,
            bool(container.streams.audio),
            rate,
            source,
        )


def _check_size(path: Path, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VideoError(
            f"{path}: frames of {width}x{height} pixels are too small "
            f"(at least {MIN_SIDE}x{MIN_SIDE} are needed)."
        )


def _decode_image(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 ``[H, W, 3]`` (resized to ``shape = (H, W)`` when given)."""
    with _open_container(path) as container:
        stream = _video_stream(container, path)
        try:
            frame = next(container.decode(stream))
        except StopIteration:
            raise VideoError(f"{path}: the image holds no decodable picture.") from None
        except _INPUT_ERRORS as exc:
            raise VideoError(f"{path}: the image is corrupt ({exc.__class__.__name__}).") from exc
        return _to_array(path, frame, shape)


def _frame_to_array(
    frame: av.VideoFrame, shape: tuple[int, int] | None, reformatter: VideoReformatter | None = None
) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB, resized to ``shape``. Pass one ``reformatter`` for all the frames of
    a stream: it keeps the colour converter instead of building one per frame."""
    reformatter = reformatter or VideoReformatter()
    height, width = shape or (frame.height, frame.width)
    shrinking = height * width < frame.height * frame.width
    rgb = reformatter.reformat(
        frame,
        width=width,
        height=height,
        format="rgb24",
        interpolation="AREA" if shrinking else "BICUBIC",
    )
    return rgb.to_ndarray()


def _to_array(
    path: Path,
    frame: av.VideoFrame,
    shape: tuple[int, int] | None,
    reformatter: VideoReformatter | None = None,
) -> np.ndarray:
    """:func:`_frame_to_array`, with a frame FFmpeg cannot convert reported as the input's error."""
    try:
        return _frame_to_array(frame, shape, reformatter)
    except _INPUT_ERRORS as exc:
        raise VideoError(
            f"{path}: a frame cannot be converted ({exc.__class__.__name__}: "
            f"{frame.width}x{frame.height} {frame.format.name})."
        ) from exc


def to_frames_tensor(arrays: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float32 ``[C, T, H, W]`` in ``[0, 1]``."""
    stacked = np.stack(arrays) if isinstance(arrays, list) else arrays
    return torch.from_numpy(stacked).permute(3, 0, 1, 2).float().div_(255.0)  # [C, T, H, W]


def to_uint8_frames(frames: torch.Tensor) -> np.ndarray:
    """float ``[C, T, H, W]`` in ``[0, 1]`` (clipped) -> uint8 ``[T, H, W, 3]``."""
    if frames.ndim != 4 or frames.shape[0] != 3:
        raise VideoError(f"expected frames shaped [3, T, H, W], got {list(frames.shape)}.")
    if frames.dtype == torch.uint8:
        return frames.permute(1, 2, 3, 0).contiguous().cpu().numpy()
    data = frames.detach().float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    return data.permute(1, 2, 3, 0).contiguous().cpu().numpy()  # [T, H, W, 3]


class VideoReader:
    """Sequential decoder of one video (or image folder) with a fixed output size.

    Iterating yields uint8 ``[H, W, 3]`` frames in order; :meth:`windows` yields overlapping
    windows as ``[C, T, H, W]`` float tensors with memory bounded by the window length.

    Args:
        path: video file, image file or folder of numbered images.
        size: shortest side of the returned frames (``None`` keeps the native size).
        shape: exact ``(H, W)`` of the returned frames; overrides ``size``.
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

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def frames(self, start: int = 0) -> Iterator[np.ndarray]:
        """Yield uint8 ``[H, W, 3]`` frames from frame index ``start`` on."""
        if _is_image_source(self.path):
            files = _image_files(self.path) if self.path.is_dir() else [self.path]
            for file in files[start:]:
                yield _decode_image(file, self.shape)
            return
        yielded = 0
        reformatter = VideoReformatter()
        for _, frame in _decode_frames(self.path, start, self.info):
            yielded += 1
            yield _to_array(self.path, frame, self.shape, reformatter)
        if yielded == 0 and start == 0:
            raise VideoError(f"{self.path}: no frame could be decoded (corrupt or truncated data).")

    def windows(self, clip_len: int, overlap: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, frames [C, T, H, W])`` windows of ``clip_len`` frames advancing by
        ``clip_len - overlap``; the last window is shorter when the video ends."""
        if clip_len <= 0 or not 0 <= overlap < clip_len:
            raise VideoError(
                f"need clip_len > overlap >= 0, got clip_len={clip_len}, overlap={overlap}."
            )
        hop = clip_len - overlap
        buffer: list[np.ndarray] = []
        start = 0
        for frame in self.frames():
            buffer.append(frame)
            if len(buffer) == clip_len:
                yield start, to_frames_tensor(buffer)
                buffer = buffer[hop:]
                start += hop
        if buffer and (start == 0 or len(buffer) > overlap):
            yield start, to_frames_tensor(buffer)


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
        except _INPUT_ERRORS as exc:
            raise VideoError(
                f"{path}: corrupt or truncated video data ({exc.__class__.__name__})."
            ) from exc
        # The index promised more frames than the data holds: the file was cut short.
        if expected and sequential < expected - max(2, expected // 20):
            raise VideoError(
                f"{path}: truncated video data (decoded {sequential} of {expected} frames)."
            )


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
    if start < 0 or stride < 1 or (num_frames is not None and num_frames < 1):
        raise VideoError(
            f"invalid window: start={start}, num_frames={num_frames}, stride={stride}."
        )
    path = Path(path)
    info = probe_video(path)
    out_shape = shape or resized_shape(info.height, info.width, size)
    stop = None if num_frames is None else start + num_frames * stride
    arrays: list[np.ndarray] = []
    if _is_image_source(path):
        files = _image_files(path) if path.is_dir() else [path]
        arrays = [_decode_image(f, out_shape) for f in files[start:stop:stride]]
    else:
        reformatter = VideoReformatter()
        for index, frame in _decode_frames(path, start, info):
            if stop is not None and index >= stop:
                break
            if (index - start) % stride == 0:
                arrays.append(_to_array(path, frame, out_shape, reformatter))
    if not arrays:
        if start > 0:
            raise VideoError(
                f"{path}: no frame at index {start} or after (the video has {info.frames})."
            )
        raise VideoError(f"{path}: no frame could be decoded (corrupt or truncated data).")
    return to_frames_tensor(arrays), info.fps


def _even(n: int) -> int:
    return n + (n % 2)


class VideoWriter:
    """Streaming H.264/MP4 writer; the file appears under ``path`` only when :meth:`close` succeeds.

    Args:
        path: output ``.mp4`` path.
        fps: frame rate (a ``Fraction`` keeps NTSC rates such as 30000/1001 exact).
        width, height: frame size; odd sizes are padded by one replicated column/row.
        audio_from: copy the first audio stream of this file (cut to the video's length).
        lossless: lossless RGB H.264 (``libx264rgb``, crf 0) instead of yuv420p; for tests and
        masters.
        crf: x264 constant rate factor (lower is better quality).
        preset: x264 speed preset.
        threads: encoder threads (0 = x264's choice, about 1.5 per core); 1 when the encoder
            shares the CPU with other work, such as a model running beside it.
        overwrite: replace an existing file instead of raising :class:`OutputExistsError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fps: float | Fraction,
        width: int,
        height: int,
        audio_from: str | os.PathLike | None = None,
        lossless: bool = False,
        crf: int = 18,
        preset: str = "veryfast",
        threads: int = 0,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise OutputExistsError(f"{self.path} exists: pass --force to overwrite it.")
        if fps <= 0 or width <= 0 or height <= 0:
            raise VideoError(f"cannot write a {width}x{height} video at {fps} fps.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self.frames_written = 0
        handle, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=".partial.mp4", dir=self.path.parent
        )
        os.close(handle)
        self._tmp = Path(tmp)
        self._audio_in = None
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            codec = "libx264rgb" if lossless else "libx264"
            self._stream = self._container.add_stream(codec, rate=self.rate)
            self._stream.width, self._stream.height = _even(width), _even(height)
            self._stream.pix_fmt = "rgb24" if lossless else "yuv420p"
            self._stream.codec_context.time_base = 1 / self.rate
            self._stream.options = (
                {"crf": "0", "preset": "ultrafast"}
                if lossless
                else {"crf": str(crf), "preset": preset}
            )
            if threads:
                self._stream.codec_context.thread_count = threads
            if audio_from is not None:
                self._open_audio(Path(audio_from))
        except BaseException:
            self.abort()
            raise

    def _open_audio(self, source: Path) -> None:
        try:
            audio_in = av.open(str(source), mode="r", metadata_errors="replace")
        except _INPUT_ERRORS:
            return
        if not audio_in.streams.audio:
            audio_in.close()
            return
        self._audio_in = audio_in
        self._audio_src = audio_in.streams.audio[0]
        self._audio_out = self._container.add_stream_from_template(self._audio_src)

    def write(self, frames: torch.Tensor | np.ndarray) -> None:
        """Append frames: float ``[C, T, H, W]`` in ``[0, 1]``, or uint8 ``[T, H, W, 3]``."""
        data = frames if isinstance(frames, np.ndarray) else to_uint8_frames(frames)
        if data.ndim != 4 or data.shape[1:] != (self.height, self.width, 3):
            raise VideoError(
                f"frames of shape {list(data.shape)} do not match the writer's "
                f"{self.height}x{self.width} RGB size."
            )
        pad_h, pad_w = _even(self.height) - self.height, _even(self.width) - self.width
        if pad_h or pad_w:
            data = np.pad(data, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for image in data:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def _copy_audio(self) -> None:
        if self._audio_in is None:
            return
        limit = Fraction(self.frames_written) / self.rate
        tb = self._audio_src.time_base
        start = self._audio_src.start_time or 0
        for packet in self._audio_in.demux(self._audio_src):
            if packet.dts is None:
                continue
            if packet.pts is not None and (packet.pts - start) * tb >= limit:
                break
            packet.stream = self._audio_out
            self._container.mux(packet)

    def close(self) -> Path:
        """Flush, copy audio, and rename the finished file into place. Returns the final path."""
        try:
            if self.frames_written == 0:
                raise VideoError(f"{self.path}: no frames were written.")
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._copy_audio()
            self._container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            publish(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial output."""
        for closable in (getattr(self, "_container", None), self._audio_in):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike,
    frames: torch.Tensor,
    fps: float | Fraction,
    *,
    audio_from: str | os.PathLike | None = None,
    lossless: bool = False,
    crf: int = 18,
    overwrite: bool = False,
) -> Path:
    """Write float frames ``[C, T, H, W]`` in ``[0, 1]`` as H.264 MP4, atomically.

    Frame count and frame rate are preserved; ``audio_from`` copies that file's audio in.
    """
    if frames.ndim != 4 or frames.shape[0] != 3 or frames.shape[1] == 0:
        raise VideoError(
            f"expected frames shaped [3, T, H, W] with T > 0, got {list(frames.shape)}."
        )
    height, width = frames.shape[-2:]
    with VideoWriter(
        path,
        fps=fps,
        width=width,
        height=height,
        audio_from=audio_from,
        lossless=lossless,
        crf=crf,
        overwrite=overwrite,
    ) as writer:
        step = max(1, int(2**26 // max(1, 3 * height * width)))  # convert ~64 MiB at a time
        for t in range(0, frames.shape[1], step):
            writer.write(frames[:, t : t + step])
    return Path(path)
