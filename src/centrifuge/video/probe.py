"""What an input holds, learnt before decoding it: :func:`probe_video` -> :class:`VideoInfo`.

Sizes are as players show the video (a phone's display matrix turns them), frame counts are the
frames players show (an edit list, as ``ffmpeg -ss T -c copy`` writes one, hides some; the frames
of a file that starts mid-GOP, before its first key frame, cannot be decoded), and the frame rate is
the container's unless it is implausible, as for broken timestamps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from centrifuge.errors import VideoError
from centrifuge.video.container import (
    IMAGE_EXTENSIONS,
    INPUT_ERRORS,
    check_exists,
    check_size,
    open_container,
    video_stream,
)
from centrifuge.video.images import IMAGE_FOLDER_FPS, decode_image, image_sequence
from centrifuge.video.orientation import IDENTITY, Orientation, orientation, stored_shape

__all__ = ["MAX_FPS", "MIN_FPS", "TRUSTED_FPS", "VideoInfo", "probe_video", "resized_shape"]

# Frame rates outside this range mean broken timestamps. High-speed cameras and phones record at up
# to 960-1000 fps; a clip whose frames are one tick of a fine time base apart claims 12,800. Rates
# above TRUSTED_FPS are believed only when frames over duration agrees (Matroska states 1000 fps
# for its 1 ms time base whatever the frames' spacing).
MIN_FPS, MAX_FPS, TRUSTED_FPS = 0.01, 1000.0, 240.0


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns (it decodes the first frame only).

    ``width`` and ``height`` are the shown size: ``turn`` (quarter turns counter-clockwise, then a
    mirror; :mod:`~centrifuge.video.orientation`) brings the stored pictures upright. ``frames``
    comes from the container's index (or a packet count when it has none), less the frames players
    do not show: ``hidden_frames`` (an edit list hides them) and ``undecodable_frames`` (before the
    first key frame of a file that starts mid-GOP); it can exceed the decodable count by a frame or
    two on damaged files. ``start`` is the container time in seconds of the first shown frame (the
    audio of the layers starts there; ``None``: unknown). ``rate_source`` says where ``rate`` comes
    from: ``"container"``, ``"duration"`` (frames over duration, when the container's rate is
    implausible, as for variable-rate files) or ``"assumed"`` (timestamps too broken for either:
    :data:`~centrifuge.video.images.IMAGE_FOLDER_FPS`). Frames are always read in decoding order,
    never placed by their timestamps, when the rate is not the container's.
    """

    path: str
    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    rate: Fraction
    rate_source: str = "container"
    turn: Orientation = IDENTITY
    start: float | None = None
    first_pts: int | None = None  # presentation time of the first shown frame (stream time base)
    hidden_frames: int = 0
    undecodable_frames: int = 0
    audio_streams: int = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.fps if self.fps > 0 else 0.0

    @property
    def rotation(self) -> int:
        """Degrees counter-clockwise the stored pictures are turned by to be shown."""
        return 90 * self.turn[0]


def resized_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """``(H, W)`` after resizing the shortest side to ``size`` (aspect kept; ``None``: as is)."""
    if size is None:
        return height, width
    if size <= 0:
        raise VideoError(f"size must be a positive number of pixels, got {size}.")
    scale = size / min(height, width)
    return max(size, round(height * scale)), max(size, round(width * scale))


def _plausible(rate: Fraction | None) -> bool:
    return rate is not None and MIN_FPS <= rate <= MAX_FPS


def _seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream):
    if stream.duration and stream.time_base:
        return Fraction(stream.duration) * stream.time_base
    if container.duration:
        return Fraction(container.duration, av.time_base)
    return None


def _stream_rate(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, frames: int
) -> tuple[Fraction, str]:
    """``(rate, source)``: the container's rate if plausible, else frames over the duration, else
    :data:`IMAGE_FOLDER_FPS` (see :class:`VideoInfo`)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    rate = Fraction(rate) if rate else None
    seconds = _seconds(container, stream)
    estimate = None
    if seconds and frames > 1:
        estimate = Fraction(frames / float(seconds)).limit_denominator(1001)
    if _plausible(rate) and (
        rate <= TRUSTED_FPS or (estimate is not None and 2 / 3 <= estimate / rate <= 3 / 2)
    ):
        return rate, "container"
    if _plausible(estimate):
        return estimate, "duration"
    return Fraction(IMAGE_FOLDER_FPS), "assumed"


def _first_frame(path: Path) -> av.VideoFrame | None:
    """The first frame the decoder gives (``None`` when there is none: reading says why)."""
    with open_container(path) as container:
        stream = video_stream(container, path)
        try:
            return next(container.decode(stream), None)
        except INPUT_ERRORS:
            return None


def _shown_frames(
    stream: av.video.stream.VideoStream, frames: int, rate: Fraction, first: av.VideoFrame | None
) -> tuple[int, int]:
    """``(hidden, undecodable)``: the stored frames an edit list hides (the stream's duration is
    the edited one) and those before the first decodable frame, by the stream's timestamps."""
    tb = stream.time_base
    hidden = undecodable = 0
    if stream.duration and tb:
        shown = round(Fraction(stream.duration) * tb * rate)
        if 0 < shown < frames - 1:
            hidden = frames - shown
    if first is not None and first.pts is not None and tb:
        lead = round(Fraction(first.pts - (stream.start_time or 0)) * tb * rate)
        if 1 < lead < frames - hidden:
            undecodable = lead
    return hidden, undecodable


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame count, frame rate, shown size, orientation and audio of a video, image or folder of
    images, decoding at most its first frame.

    Raises:
        VideoError: missing file, not a media file, no video stream (cover art is not one), or no
            frames.
    """
    path = Path(path)
    check_exists(path)
    images = image_sequence(path)
    if path.is_dir() and not images:
        raise VideoError(
            f"{path}: the folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})."
        )
    if images is not None:
        height, width = decode_image(images[0]).shape[:2]
        check_size(path, width, height)
        rate = Fraction(IMAGE_FOLDER_FPS)
        return VideoInfo(str(path), len(images), IMAGE_FOLDER_FPS, width, height, False, rate)
    first = _first_frame(path)
    turn = orientation(first) if first is not None else IDENTITY
    with open_container(path) as container:
        stream = video_stream(container, path)
        try:
            width, height = stream.codec_context.width, stream.codec_context.height
            frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
            rate, source = _stream_rate(container, stream, frames)
        except INPUT_ERRORS as exc:
            raise VideoError(f"{path}: corrupt video data ({exc.__class__.__name__}).") from exc
        if frames <= 0:
            raise VideoError(f"{path}: the video stream holds no frames.")
        hidden = undecodable = 0
        if source == "container":
            hidden, undecodable = _shown_frames(stream, frames, rate, first)
        height, width = stored_shape((height, width), turn)
        check_size(path, width, height)
        first_pts = first.pts if first is not None else None
        start = None
        if first_pts is not None and stream.time_base:
            start = float(first_pts * stream.time_base)
        return VideoInfo(
            str(path),
            int(frames) - hidden - undecodable,
            float(rate),
            width,
            height,
            bool(container.streams.audio),
            rate,
            source,
            turn=turn,
            start=start,
            first_pts=first_pts,
            hidden_frames=hidden,
            undecodable_frames=undecodable,
            audio_streams=len(container.streams.audio),
        )
