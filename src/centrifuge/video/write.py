"""Writing videos on PyAV (FFmpeg): :class:`VideoWriter` and :func:`write_video`.

Frames come in as ``float`` channel-first ``[C, T, H, W]`` in ``[0, 1]``; the ``uint8``
``[T, H, W, 3]`` pictures the encoder takes exist only inside this module. :func:`quantize_frames`
gives the exact values the writer will encode, four times smaller than float32, for queues in
front of a writer.

Outputs are H.264 in MP4 (yuv420p, playable everywhere), written to a hidden temporary file beside
the target and renamed into place when complete, so an interrupted write never leaves a partial file
under the final name. H.264 in 4:2:0 cannot hold an odd width or height, so a video of odd size is
VP9 in MP4 instead (4:2:0 at any size; every current browser plays it), and keeps its exact size.
The audio of another file (the input's) can be written in, every audio stream of it, from a given
time on and cut to the video's length (:mod:`~centrifuge.video.audio`: AAC or MP3 copied, the rest
transcoded to AAC).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from centrifuge.errors import OutputExistsError, VideoError
from centrifuge.utils import publish
from centrifuge.video.audio import AudioTracks

__all__ = ["VideoWriter", "quantize_frames", "write_video"]


def quantize_frames(frames: torch.Tensor) -> torch.Tensor:
    """float ``[C, T, H, W]`` in ``[0, 1]`` (clipped) -> uint8 ``[C, T, H, W]``, rounded as the
    writer rounds: :meth:`VideoWriter.write` takes the result as it is. uint8 input is returned
    unchanged."""
    if frames.ndim != 4 or frames.shape[0] != 3:
        raise VideoError(f"expected frames shaped [3, T, H, W], got {list(frames.shape)}.")
    if frames.dtype == torch.uint8:
        return frames
    return frames.detach().float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)


def _codec(width: int, height: int, lossless: bool, crf: int, preset: str) -> tuple[str, str, dict]:
    """``(codec, pix_fmt, options)`` for frames of ``width x height``."""
    if lossless:  # RGB 4:4:4: any size
        return "libx264rgb", "rgb24", {"crf": "0", "preset": "ultrafast"}
    if width % 2 or height % 2:  # 4:2:0 H.264 needs even sizes; VP9 does not
        vp9 = {"crf": str(crf + 6), "b": "0", "deadline": "realtime", "cpu-used": "8"}
        return "libvpx-vp9", "yuv420p", {**vp9, "row-mt": "1"}
    return "libx264", "yuv420p", {"crf": str(crf), "preset": preset}


class VideoWriter:
    """Streaming H.264/MP4 writer; the file appears under ``path`` only when :meth:`close` succeeds.

    Args:
        path: output ``.mp4`` path.
        fps: frame rate (a ``Fraction`` keeps NTSC rates such as 30000/1001 exact).
        width, height: frame size (odd sizes are written as VP9).
        audio_from: write the audio streams of this file (cut to the video's length).
        audio_start: container time (seconds) in ``audio_from`` of the first frame written: its
            audio starts there (``None``: where the audio starts).
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
        audio_start: float | None = None,
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
        self._audio: AudioTracks | None = None
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            codec, pix_fmt, options = _codec(width, height, lossless, crf, preset)
            self.codec = codec
            self._stream = self._container.add_stream(codec, rate=self.rate)
            self._stream.width, self._stream.height = width, height
            self._stream.pix_fmt = pix_fmt
            self._stream.codec_context.time_base = 1 / self.rate
            self._stream.options = options
            if threads:
                self._stream.codec_context.thread_count = threads
            if audio_from is not None:
                self._audio = AudioTracks(self._container, Path(audio_from), audio_start)
        except BaseException:
            self.abort()
            raise

    def write(self, frames: torch.Tensor) -> None:
        """Append frames ``[C, T, H, W]``: floats in ``[0, 1]`` (clipped), or uint8 from
        :func:`quantize_frames`."""
        expected = (3, self.height, self.width)
        if frames.ndim != 4 or (frames.shape[0], *frames.shape[2:]) != expected:
            raise VideoError(
                f"frames of shape {list(frames.shape)} do not match the writer's "
                f"[3, T, {self.height}, {self.width}] RGB size."
            )
        data = quantize_frames(frames).permute(1, 2, 3, 0).contiguous().cpu().numpy()  # [T,H,W,3]
        for image in data:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames_written
            frame.time_base = 1 / self.rate
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames_written += 1

    def close(self) -> Path:
        """Flush, copy audio, and rename the finished file into place. Returns the final path."""
        try:
            if self.frames_written == 0:
                raise VideoError(f"{self.path}: no frames were written.")
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.write(Fraction(self.frames_written) / self.rate)
                self._audio.close()
            self._container.close()
            publish(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial output."""
        for closable in (getattr(self, "_container", None), self._audio):
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
    audio_start: float | None = None,
    lossless: bool = False,
    crf: int = 18,
    overwrite: bool = False,
) -> Path:
    """Write float frames ``[C, T, H, W]`` in ``[0, 1]`` as H.264 MP4, atomically.

    Frame count and frame rate are preserved; ``audio_from`` writes that file's audio in (from
    ``audio_start``, see :class:`VideoWriter`).
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
        audio_start=audio_start,
        lossless=lossless,
        crf=crf,
        overwrite=overwrite,
    ) as writer:
        step = max(1, int(2**26 // max(1, 3 * height * width)))  # convert ~64 MiB at a time
        for t in range(0, frames.shape[1], step):
            writer.write(frames[:, t : t + step])
    return Path(path)
