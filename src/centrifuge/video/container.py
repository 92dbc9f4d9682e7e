"""Opening inputs with PyAV (FFmpeg): which files count, which errors mean "cannot be read", and
the video stream of a container (never its cover art)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import av

from centrifuge.errors import VideoError

__all__ = [
    "IMAGE_EXTENSIONS",
    "INPUT_ERRORS",
    "MIN_SIDE",
    "VIDEO_EXTENSIONS",
    "check_exists",
    "check_size",
    "open_container",
    "video_stream",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"}
    | {".wmv", ".flv", ".gif", ".ts"}
)
MIN_SIDE = 2  # frames narrower or lower than this are refused
# What reading an input may raise besides our own errors: FFmpeg's errors, the OS's, PyAV's
# argument and metadata decoding errors. All of them mean the input cannot be read.
INPUT_ERRORS = (av.error.FFmpegError, OSError, ValueError, UnicodeError, EOFError)


def check_exists(path: Path) -> None:
    """Refuse, with one line, a missing, unreadable, empty or special file (a FIFO may never end).

    Raises:
        VideoError: naming ``path`` and the cause.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file or folder.") from None
    except OSError as exc:
        raise VideoError(f"{path}: cannot be read ({exc.strerror}).") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise VideoError(f"{path}: not a regular file or folder (a pipe, socket or device).")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path}: cannot be read (permission denied).")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty.")


def check_size(path: Path, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VideoError(
            f"{path}: frames of {width}x{height} pixels are too small "
            f"(at least {MIN_SIDE}x{MIN_SIDE} are needed)."
        )


@contextlib.contextmanager
def open_container(path: Path) -> Iterator[av.container.InputContainer]:
    """The input opened for reading; FFmpeg's refusals become one-line :class:`VideoError`\\ s."""
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


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first video stream that is not an attached picture (the cover art of an mp3 or m4a is
    a one-picture "video" stream, not a video).

    Raises:
        VideoError: no such stream, or its codec is unknown.
    """
    cover = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not s.disposition & cover]
    if not streams:
        if container.streams.video:
            raise VideoError(f"{path}: the file has no video stream, only a cover picture.")
        raise VideoError(f"{path}: the file has no video stream.")
    stream = streams[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: the video stream's codec is unknown (corrupt or unsupported).")
    return stream
