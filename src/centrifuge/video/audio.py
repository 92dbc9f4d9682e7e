"""The input's audio in an output MP4: every audio stream, in sync with the first shown frame.

:func:`audio_plan` says what becomes of each audio stream of a file: AAC and MP3 are copied as they
are (every browser plays them in MP4); anything else (PCM, Vorbis, Opus, FLAC, AC-3...) is
transcoded to AAC, which MP4 players and browsers all take. :class:`AudioTracks` writes them into an
open output container from container time ``start`` (the first shown video frame: a file that
starts mid-GOP shows its first frame late, and its audio must start there too) for ``seconds``.
Copied audio is cut on packet boundaries (a packet is about 20 ms), transcoded audio to the sample.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.resampler import AudioResampler

from centrifuge.video.container import INPUT_ERRORS

__all__ = ["COPIED_CODECS", "AudioTracks", "audio_plan"]

COPIED_CODECS = frozenset({"aac", "mp3"})
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)
_AAC_BITRATE = 64_000  # per channel
# the layout AAC is written in, by channel count (FFmpeg's encoder takes only standard layouts;
# a source's "2 channels", of unknown order, is written as stereo)
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _aac_opens(rate: int, layout: str) -> bool:
    """Whether FFmpeg's AAC encoder takes this rate and layout (tried on a throwaway encoder: a
    stream added to the output cannot be taken back)."""
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = rate, layout, "fltp"
    try:
        ctx.open()
        return True
    except INPUT_ERRORS:
        return False


def _action(stream: av.audio.stream.AudioStream) -> str:
    codec = stream.codec_context.name if stream.codec_context is not None else None
    if codec is None:
        return "dropped (unknown codec)"
    return "copied" if codec in COPIED_CODECS else "aac"


def audio_plan(path: str | os.PathLike) -> list[dict]:
    """One entry per audio stream of ``path``: ``{"stream", "codec", "written"}``, where
    ``written`` is ``"copied"``, ``"aac"`` (transcoded) or ``"dropped (...)"``. Empty when the file
    has no audio or cannot be opened."""
    try:
        with av.open(str(path), mode="r", metadata_errors="replace") as container:
            return [
                {
                    "stream": i,
                    "codec": s.codec_context.name if s.codec_context is not None else None,
                    "written": _action(s),
                }
                for i, s in enumerate(container.streams.audio)
            ]
    except INPUT_ERRORS:
        return []


class _Copy:
    """Packets of one stream, as they are."""

    def __init__(self, out: av.container.OutputContainer, src: av.audio.stream.AudioStream):
        self.src, self.dst = src, out.add_stream_from_template(src)

    def add(self, packet: av.Packet, start: Fraction, limit: Fraction, mux) -> None:
        tb = self.src.time_base
        if packet.pts is None or packet.dts is None or packet.is_discard:
            return
        at = packet.pts * tb - start
        if at < -Fraction(1, 1000) or at >= limit:
            return
        shift = round(start / tb)
        packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
        packet.stream = self.dst
        mux(packet)

    def finish(self, start: Fraction, limit: Fraction, mux) -> None:
        pass


class _Transcode:
    """One stream decoded, cut to the sample and encoded as AAC."""

    def __init__(self, out: av.container.OutputContainer, src: av.audio.stream.AudioStream):
        self.src = src
        rate = src.codec_context.sample_rate or 48000
        rate = rate if rate in _AAC_RATES else 48000
        layout = src.codec_context.layout
        channels = layout.nb_channels if layout is not None else 2
        layout_name = layout.name if layout is not None else "stereo"
        if not _aac_opens(rate, layout_name):
            layout_name = _AAC_LAYOUTS.get(channels, "stereo")
            layout_name = layout_name if _aac_opens(rate, layout_name) else "stereo"
        self.dst = out.add_stream("aac", rate=rate, layout=layout_name)
        self.dst.bit_rate = _AAC_BITRATE * min(channels, 8)
        self.resampler = AudioResampler(format="fltp", layout=layout_name, rate=rate)
        self.rate, self.layout = rate, layout_name
        self.at = Fraction(0)  # source time of the resampler's next output sample
        self.written = 0  # samples written

    def _encode(self, frame: av.AudioFrame | None, mux) -> None:
        for packet in self.dst.encode(frame):
            mux(packet)

    def add(self, packet: av.Packet, start: Fraction, limit: Fraction, mux) -> None:
        for decoded in packet.decode():
            if decoded.pts is not None and decoded.time_base is not None:
                at = decoded.pts * decoded.time_base
            else:  # a stream without timestamps: one sample after the other
                at = self.at
            self.at = at
            for frame in self.resampler.resample(decoded):
                self._add(frame, start, limit, mux)

    def _add(self, frame: av.AudioFrame, start: Fraction, limit: Fraction, mux) -> None:
        at, self.at = self.at, self.at + Fraction(frame.samples, self.rate)
        samples = frame.to_ndarray()  # [channels, n] float32 (fltp)
        first = max(0, round((start - at) * self.rate))  # drop what comes before ``start``
        last = min(samples.shape[1], round((start + limit - at) * self.rate))
        if last <= first:
            return
        if self.written == 0:  # audio that starts after the first frame starts as late
            self.written = max(0, round((at - start) * self.rate) + first)
        out = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, first:last]), format="fltp", layout=self.layout
        )
        out.sample_rate, out.pts, out.time_base = self.rate, self.written, Fraction(1, self.rate)
        self.written += last - first
        self._encode(out, mux)

    def finish(self, start: Fraction, limit: Fraction, mux) -> None:
        for frame in self.resampler.resample(None):  # what the resampler still holds
            self._add(frame, start, limit, mux)
        self._encode(None, mux)


class AudioTracks:
    """Every usable audio stream of ``source`` written into ``out`` (see :func:`audio_plan`).

    Create it before the output's header is written (before the first video packet is muxed), call
    :meth:`write` once after the video is flushed, then :meth:`close`. A source that cannot be read
    gives no audio (the video is what the user asked for).

    Args:
        out: the output container, open for writing.
        source: the file whose audio is written.
        start: container time (seconds) of the output's first frame; ``None``: the audio's own
            start.
    """

    def __init__(
        self, out: av.container.OutputContainer, source: Path, start: float | None = None
    ) -> None:
        self.out, self.start = out, start
        self.tracks: dict[int, _Copy | _Transcode] = {}
        self._in = None
        try:
            self._in = av.open(str(source), mode="r", metadata_errors="replace")
        except INPUT_ERRORS:
            return
        for stream in self._in.streams.audio:
            action = _action(stream)
            if action.startswith("dropped"):
                continue
            with contextlib.suppress(*INPUT_ERRORS):
                track = _Copy(out, stream) if action == "copied" else _Transcode(out, stream)
                self.tracks[stream.index] = track

    def write(self, seconds: Fraction) -> None:
        """Write ``seconds`` of audio from ``start``."""
        if not self.tracks:
            return
        streams = [self._in.streams[i] for i in self.tracks]
        if self.start is not None:
            start = Fraction(self.start).limit_denominator(10**6)
        else:
            first = streams[0]
            start = Fraction(first.start_time or 0) * (first.time_base or 1)
        try:
            for packet in self._in.demux(*streams):
                self.tracks[packet.stream.index].add(packet, start, seconds, self.out.mux)
        except INPUT_ERRORS:
            pass  # damaged audio: what was read is kept, like a player would play it
        for track in self.tracks.values():
            with contextlib.suppress(*INPUT_ERRORS):
                track.finish(start, seconds, self.out.mux)

    def close(self) -> None:
        if self._in is not None:
            with contextlib.suppress(Exception):
                self._in.close()
            self._in = None
