"""A corpus of odd, broken and hostile video inputs, generated (never committed media).

``base_files(folder)`` writes small valid files in many containers, codecs, pixel formats and sizes,
the files of issue 24 (turned phone videos, 1000 fps, lossless trims with an edit list or cut mid-
GOP, odd sizes, extreme aspect ratios, several audio tracks in codecs MP4 does not take, cover art),
plus the specific failures of issue 13 (raw H.264, a resolution change mid-stream, broken
timestamps, a zeroed ``stts`` box, non-UTF-8 metadata, frames under 2 px, a truncated streamable
MKV/WebM). ``mutations(files, folder, n, seed)`` derives ``n`` damaged files from them with a fixed
seed: truncations at many offsets, byte flips, zeroed MP4 boxes and wrong extensions.

Run as a script to write a corpus for a longer campaign:
``python tests/corpus.py OUT_DIR [--mutations N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FRAMES = 8
SIZE = (32, 32)  # (H, W)


@dataclass(frozen=True)
class Case:
    path: Path
    kind: str
    valid: bool  # FFmpeg decodes all of it: separate must succeed


def _pattern(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth moving uint8 frames ``[T, H, W, 3]``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    phase = rng.uniform(0, 6.28, size=3)
    frames = [
        np.stack(
            [127 + 100 * np.sin((x + 2 * i) / 5 + phase[c] + y / 7) for c in range(3)], axis=-1
        )
        for i in range(t)
    ]
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def write(
    path: Path,
    *,
    codec: str = "libx264",
    fmt: str | None = None,
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = SIZE,
    frames: int = FRAMES,
    rate: Fraction | int = 25,
    time_base: Fraction | None = None,
    pts: Callable[[int], int | None] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    audio: bool | str | tuple[str, ...] = False,
    rotation: int = 0,
    seed: int = 0,
) -> Path:
    """Encode a generated clip with PyAV; ``pts(i)`` overrides frame timestamps. ``audio``: an
    AAC track (``True``), or one track per codec named; ``rotation``: a display matrix turning the
    pictures this many degrees counter-clockwise, as phones write one."""
    h, w = size
    data = _pattern(frames, h, w, seed)
    codecs = ("aac",) if audio is True else (audio,) if isinstance(audio, str) else audio or ()
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as c:
        if metadata:
            c.metadata.update(metadata)
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if rotation:
            s.set_display_rotation(rotation)
        if time_base is not None:
            s.time_base = time_base
            s.codec_context.time_base = time_base
        s.options = options or {}
        tracks = [
            c.add_stream(
                name, rate=AUDIO_RATES.get(name, 8000), layout=AUDIO_LAYOUTS.get(name, "mono")
            )
            for name in codecs
        ]
        for a in tracks:
            a.options = {"strict": "-2"}  # FFmpeg's own Vorbis encoder is "experimental"
        for i, image in enumerate(data):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = pts(i) if pts is not None else i
            if time_base is not None:
                frame.time_base = time_base
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
        for k, a in enumerate(tracks):
            _write_tone(c, a, frames / float(rate), pitch=9.0 + 4 * k)
    return path


AUDIO_RATES = {"libopus": 48000, "opus": 48000}  # sample rates of the test tones (else 8 kHz)
AUDIO_LAYOUTS = {"vorbis": "stereo"}  # FFmpeg's Vorbis encoder takes only stereo (else mono)


def _write_tone(c: av.container.OutputContainer, a, seconds: float, pitch: float = 9.0) -> None:
    """``seconds`` (and a little more) of a quiet mono tone into the audio stream ``a``."""
    rate, layout = a.codec_context.sample_rate, a.codec_context.layout
    n = 1024
    for i in range(int(seconds * rate) // n + 1):
        tone = (np.sin((np.arange(n) + i * n) / pitch) * 0.1).astype(np.float32)[None]
        tone = np.repeat(tone, layout.nb_channels, axis=0)
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout=layout.name)
        af.sample_rate, af.pts = rate, i * n
        for packet in a.encode(af):
            c.mux(packet)
    for packet in a.encode(None):
        c.mux(packet)


def remux(source: Path, path: Path, *, cut: float, shift: float, at_key_frame: bool) -> Path:
    """Copy ``source``'s packets into ``path`` (no decoding), as ``ffmpeg -c copy`` does: the
    video's from the key frame at ``cut`` seconds (``at_key_frame``) or from the packet decoded at
    ``cut`` on (a stream cut mid-GOP), the audio's from ``cut``; timestamps moved ``shift`` seconds
    earlier. Packets left before 0 make the MP4 muxer write an edit list that hides them, as
    ``ffmpeg -ss T -i in.mp4 -c copy out.mp4`` does."""
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        started = False
        for packet in src.demux():
            if packet.dts is None or packet.pts is None:
                continue
            if packet.stream.type == "video" and not started:
                if at_key_frame:
                    started = packet.is_keyframe and packet.pts * packet.time_base >= cut
                else:
                    started = packet.dts * packet.time_base >= cut
            if not started or packet.pts * packet.time_base < cut - 0.2:
                continue
            ticks = int(shift / packet.time_base)
            packet.pts, packet.dts = packet.pts - ticks, packet.dts - ticks
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return path


def write_trimmed(path: Path, *, mid_gop: bool = False) -> Path:
    """A 50-frame 25 fps clip with audio (key frames every 25 frames) cut losslessly at 1.4 s as
    ``ffmpeg -ss 1.4 -c copy`` cuts it (an edit list hides frames 25-34: 15 frames are shown), or
    with ``mid_gop`` its packets from 0.4 s on (frame 10, no key frame until frame 25: players
    show 25 frames, from 0.6 s)."""
    source = write(
        path.with_name(f".{path.stem}.src.mp4"), frames=50, options={"g": "25"}, audio=True
    )
    try:
        if mid_gop:
            return remux(source, path, cut=0.4, shift=0.4, at_key_frame=False)
        return remux(source, path, cut=1.0, shift=1.4, at_key_frame=True)
    finally:
        source.unlink()


def write_cover_art_mp3(path: Path) -> Path:
    """An MP3 with a PNG cover picture (an attached-picture "video" stream of one frame)."""
    with av.open(str(path), "w") as c:
        a = c.add_stream("libmp3lame", rate=44100)
        v = c.add_stream("png")
        v.width, v.height, v.pix_fmt = 16, 16, "rgb24"
        v.disposition = av.stream.Disposition.attached_pic
        image = av.VideoFrame.from_ndarray(_pattern(1, 16, 16)[0], format="rgb24")
        for packet in v.encode(image):
            packet.pts = packet.dts = 0
            c.mux(packet)
        _write_tone(c, a, 0.5)
    return path


def write_without_timestamps(path: Path, frames: int) -> Path:
    """An H.264 MP4 whose frames are one tick of a 1/12800 time base apart: the container claims
    thousands of frames per second and a few milliseconds, FFmpeg still decodes every frame."""
    return write(path, frames=frames, time_base=Fraction(1, 12800), pts=lambda i: i)


def _raw_h264(
    path: Path, size: tuple[int, int] = SIZE, frames: int = FRAMES, seed: int = 0
) -> bytes:
    write(path, fmt="h264", size=size, frames=frames, seed=seed)
    return path.read_bytes()


def _zero_box(data: bytes, box: bytes) -> bytes:
    """Zero the payload of every MP4 box of this type (its header is kept)."""
    out = bytearray(data)
    start = 0
    while (i := out.find(box, start)) >= 4:
        size = int.from_bytes(out[i - 4 : i], "big")
        end = min(len(out), i - 4 + size) if size >= 8 else i + 4
        out[i + 4 : end] = bytes(end - i - 4)
        start = i + 4
    return bytes(out)


def base_files(folder: Path) -> list[Case]:
    """Valid files of many kinds, and the named failures of issue 13."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(name: str, valid: bool, make: Callable[[Path], object]) -> None:
        path = folder / name
        make(path)
        cases.append(Case(path, name, valid))

    add("h264.mp4", True, lambda p: write(p))
    add("audio.mp4", True, lambda p: write(p, audio=True))
    add("odd_35x21.mp4", True, lambda p: write(p, size=(21, 35), pix_fmt="yuv444p"))
    add("yuv444.mp4", True, lambda p: write(p, pix_fmt="yuv444p"))
    add("10bit.mkv", True, lambda p: write(p, pix_fmt="yuv420p10le"))
    add("tall_2x40.mkv", True, lambda p: write(p, codec="ffv1", pix_fmt="bgr0", size=(40, 2)))
    add("ntsc.mp4", True, lambda p: write(p, rate=Fraction(30000, 1001)))
    add("slow.mp4", True, lambda p: write(p, rate=Fraction(2, 3)))
    add("vfr.mkv", True, lambda p: write(p, rate=1000, pts=lambda i: i * 40 + (i % 3) * 7))
    add("vp9.webm", True, lambda p: write(p, codec="libvpx-vp9"))
    add("vp8.webm", True, lambda p: write(p, codec="libvpx"))
    add("mpeg4.avi", True, lambda p: write(p, codec="mpeg4"))
    add("mpeg2.ts", True, lambda p: write(p, codec="mpeg2video"))
    add("mjpeg.mov", True, lambda p: write(p, codec="mjpeg", pix_fmt="yuvj420p"))
    add("alpha.mov", True, lambda p: write(p, codec="png", pix_fmt="rgba"))
    add("gray.mkv", True, lambda p: write(p, codec="ffv1", pix_fmt="gray"))
    add("anim.gif", True, lambda p: write(p, codec="gif", pix_fmt="rgb8"))
    add("still.png", True, lambda p: write(p, codec="png", pix_fmt="rgb24", frames=1, fmt="image2"))
    add("ünïcödé name.mp4", True, lambda p: write(p))
    add("-dash.mp4", True, lambda p: write(p))
    # issue 13, point 4: a raw annex-B H.264 stream, under its own and a wrong extension
    add("raw.h264", True, lambda p: _raw_h264(p))
    add("raw_as.mkv", True, lambda p: p.write_bytes(_raw_h264(folder / ".tmp.h264")))
    # the resolution changes mid-way: two raw streams back to back
    add(
        "size_change.h264",
        True,
        lambda p: p.write_bytes(
            _raw_h264(folder / ".a.h264", (32, 32))
            + _raw_h264(folder / ".b.h264", (48, 64), seed=1)
        ),
    )
    # point 7: broken frame timestamps: packets one tick apart in a 1/12800 time base
    add("no_timestamps.mp4", True, lambda p: write_without_timestamps(p, 40))
    # point 4: an MP4 whose sample-duration table (stts) is zeroed
    add("zero_stts.mp4", False, lambda p: p.write_bytes(_zero_box(write(p).read_bytes(), b"stts")))

    # point 4: metadata that is not UTF-8
    def latin1_title(p: Path) -> None:
        data = write(p, fmt="matroska", metadata={"title": "TITLEXTITLE"}).read_bytes()
        p.write_bytes(data.replace(b"TITLEXTITLE", b"T\xe9\xff\xfeL\xc3(\xa0\xa1T\xe9"))

    add("latin1_title.mkv", True, latin1_title)
    # point 5: frames under 2 px
    add("thin_33x1.mkv", False, lambda p: write(p, codec="ffv1", pix_fmt="bgr0", size=(1, 33)))
    add("dot_1x1.mov", False, lambda p: write(p, codec="png", pix_fmt="rgb24", size=(1, 1)))
    # point 4: streamable MKV / WebM cut short (no index, no duration)
    for name, codec in (("cut_stream.mkv", "libx264"), ("cut_stream.webm", "libvpx-vp9")):

        def cut(p: Path, codec: str = codec) -> None:
            fmt = "webm" if p.suffix == ".webm" else "matroska"
            data = write(p, codec=codec, fmt=fmt, frames=24, container_options={"live": "1"})
            p.write_bytes(data.read_bytes()[: len(data.read_bytes()) * 2 // 3])

        add(name, False, cut)
    # issue 24: the files phones, cameras, editors and `ffmpeg -c copy` make
    add("phone_rot90.mp4", True, lambda p: write(p, size=(32, 48), rotation=90))
    add("phone_rot180.mov", True, lambda p: write(p, rotation=180, audio=True))
    add("highspeed_1000fps.mp4", True, lambda p: write(p, frames=40, rate=1000, audio=True))
    add("trim_editlist.mp4", True, lambda p: write_trimmed(p))
    add("trim_mid_gop.mp4", True, lambda p: write_trimmed(p, mid_gop=True))
    add("odd_225x127.mp4", True, lambda p: write(p, size=(127, 225), pix_fmt="yuv444p"))
    add("strip_16x1000.mkv", True, lambda p: write(p, codec="ffv1", size=(1000, 16), frames=3))
    add("tracks.mkv", True, lambda p: write(p, audio=("aac", "vorbis", "libopus", "pcm_s16le")))
    add("pcm_audio.mov", True, lambda p: write(p, audio="pcm_s16le"))
    add("cover_art.mp3", False, write_cover_art_mp3)
    for tmp in folder.glob(".*.h264"):
        tmp.unlink()
    return cases


def mutations(cases: list[Case], folder: Path, n: int, seed: int = 0) -> list[Case]:
    """``n`` damaged copies of valid ``cases`` (fixed ``seed``): truncated at an offset, bytes
    flipped, an MP4 box zeroed, or the right bytes under a wrong extension."""
    rng = random.Random(seed)
    sources = [c for c in cases if c.valid and c.path.suffix != ".png"]
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Case] = []
    boxes = [b"moov", b"mdat", b"stsz", b"stco", b"stss", b"avcC", b"tkhd", b"mdhd", b"hdlr"]
    for i in range(n):
        source = rng.choice(sources)
        data = source.path.read_bytes()
        how = rng.choice(["truncate", "truncate", "flip", "flip", "zero_box", "extension"])
        suffix = source.path.suffix
        if how == "truncate":
            data = data[: rng.randrange(0, len(data))]
        elif how == "flip":
            buf = bytearray(data)
            for _ in range(rng.choice([1, 4, 32])):
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            data = bytes(buf)
        elif how == "zero_box":
            data = _zero_box(data, rng.choice(boxes))
        else:
            suffix = rng.choice([".mp4", ".mkv", ".avi", ".webm", ".mov", ".png", ".jpg", ".txt"])
        path = folder / f"m{i:03d}_{how}_{source.path.stem[:12]}{suffix}"
        path.write_bytes(data)
        out.append(Case(path, f"{how}:{source.kind}", False))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--mutations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = base_files(args.out / "base")
    cases += mutations(cases, args.out / "mutated", args.mutations, args.seed)
    print(f"wrote {len(cases)} files under {args.out}")


if __name__ == "__main__":
    main()
