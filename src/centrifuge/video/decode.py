"""Decoding a video's frames in order, from any frame on: :func:`decode_frames`."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from centrifuge.errors import VideoError
from centrifuge.video.container import INPUT_ERRORS, open_container, video_stream
from centrifuge.video.probe import VideoInfo

__all__ = ["decode_frames"]


def decode_frames(path: Path, start: int, info: VideoInfo) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(index, frame)`` of the frames players show, from index ``start`` on.

    From the first frame, or when the input's timestamps are not to be trusted
    (``info.rate_source != "container"``), frames are counted in decoding order. Otherwise, for
    ``start > 0``, decoding seeks to the key frame before ``start``, and the index of a frame is its
    presentation time from the first shown frame (``info.first_pts``) times the frame rate, so it
    does not depend on where decoding began. Frames an edit list hides are dropped by FFmpeg.

    Raises:
        VideoError: corrupt data, or fewer frames than ``info.frames`` (the file was cut short).
    """
    with open_container(path) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = info.rate
        time_base = stream.time_base or Fraction(1, 1)
        first_pts = info.first_pts if info.first_pts is not None else (stream.start_time or 0)
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
