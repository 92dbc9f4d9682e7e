from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import corpus
from centrifuge.errors import OutputExistsError, VideoError
from centrifuge.video.read import VideoReader, probe_video, read_video
from centrifuge.video.write import VideoWriter, quantize_frames, write_video
from conftest import random_frames, write_test_video


def test_lossless_round_trip_is_exact(tmp_path: Path) -> None:
    frames = (random_frames(12, 34, 46) * 255).round() / 255
    write_video(tmp_path / "a.mp4", frames, 25, lossless=True)
    back, fps = read_video(tmp_path / "a.mp4")
    assert fps == 25
    assert torch.equal(back, frames)


def test_read_generated_video_matches_written_frames(video_file) -> None:
    path, frames = video_file
    back, _ = read_video(path)
    assert back.dtype == torch.float32 and back.shape == (3, 40, 48, 64)
    assert torch.equal(back, frames)


@pytest.mark.parametrize(("start", "num", "stride"), [(0, 5, 1), (17, 8, 1), (5, 6, 3), (39, 4, 1)])
def test_window_read_equals_slice_of_full_read(video_file, start, num, stride) -> None:
    path, frames = video_file
    window, _ = read_video(path, start=start, num_frames=num, stride=stride)
    assert torch.equal(window, frames[:, start : start + num * stride : stride])


def test_seek_on_real_clip_equals_full_decode(shared_data: Path) -> None:
    path = shared_data / "train" / "mmaction2__test_pool.mp4"  # 300 frames, several key frames
    full, fps = read_video(path, size=64)
    for start in (0, 1, 97, 250, 290):
        window, wfps = read_video(path, start=start, num_frames=10, size=64)
        assert wfps == fps
        assert torch.equal(window, full[:, start : start + 10])


def test_real_clip_info_and_resize(shared_data: Path) -> None:
    path = shared_data / "train" / "opencv-doc__vtest.mp4"
    info = probe_video(path)
    assert (info.frames, info.fps, info.width, info.height) == (795, 10.0, 480, 360)
    clip, fps = read_video(path, start=100, num_frames=16, size=129)
    assert clip.shape == (3, 16, 129, 172) and fps == 10.0
    assert clip.min() >= 0.0 and clip.max() <= 1.0


def test_streaming_windows_cover_the_video(video_file) -> None:
    path, frames = video_file
    reader = VideoReader(path)
    windows = list(reader.windows(clip_len=16, overlap=4))
    assert [s for s, _ in windows] == [0, 12, 24]
    assert windows[-1][0] + windows[-1][1].shape[1] == 40
    for start, w in windows:
        assert torch.equal(w, frames[:, start : start + w.shape[1]])


@pytest.mark.parametrize("fps", [25, Fraction(30000, 1001), 12.5])
def test_write_preserves_frame_count_and_rate(tmp_path: Path, fps) -> None:
    frames = random_frames(23, 40, 60)
    out = write_video(tmp_path / "v.mp4", frames, fps)
    info = probe_video(out)
    assert info.frames == 23
    assert info.rate == Fraction(fps)
    assert len(list(VideoReader(out))) == 23


def test_odd_sizes_keep_their_exact_size(tmp_path: Path) -> None:
    """4:2:0 H.264 cannot hold an odd size: such videos are VP9 in MP4, at their own size."""
    frames = random_frames(5, 31, 45)
    out = write_video(tmp_path / "odd.mp4", frames, 10)
    info = probe_video(out)
    assert (info.height, info.width, info.frames, info.rate) == (31, 45, 5, 10)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "vp9"
    back, _ = read_video(out)
    assert back.shape == frames.shape and (back - frames).abs().mean() < 0.02
    even = write_video(tmp_path / "even.mp4", random_frames(5, 32, 46), 10)
    with av.open(str(even)) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_audio_is_copied_from_another_file(tmp_path: Path) -> None:
    src = write_test_video(tmp_path / "src.mp4", random_frames(50, 32, 32), 25, audio_seconds=2.0)
    assert probe_video(src).has_audio
    out = write_video(tmp_path / "out.mp4", random_frames(50, 32, 32), 25, audio_from=src)
    info = probe_video(out)
    assert info.has_audio and info.frames == 50
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.demux(c.streams.audio[0])) > 10


def test_existing_output_is_kept_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")
    with pytest.raises(OutputExistsError):
        write_video(target, random_frames(3, 16, 16), 25)
    assert target.read_bytes() == b"precious"
    write_video(target, random_frames(3, 16, 16), 25, overwrite=True)
    assert probe_video(target).frames == 3


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    writer = VideoWriter(tmp_path / "x.mp4", fps=25, width=16, height=16)
    writer.write(random_frames(2, 16, 16))
    with pytest.raises(VideoError):
        writer.write(random_frames(2, 8, 8))  # wrong size
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_image_folder_and_single_image_read_as_video(tmp_path: Path) -> None:
    frames = (random_frames(4, 20, 30) * 255).round().to(torch.uint8)
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (1, 2, 10, 3):  # natural order: 1, 2, 3, 10
        img = frames[:, sorted([1, 2, 10, 3]).index(i)].permute(1, 2, 0).numpy()
        av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").to_image().save(
            folder / f"frame_{i}.png"
        )
    video, fps = read_video(folder)
    assert video.shape == (3, 4, 20, 30) and fps == 25.0
    assert torch.equal((video * 255).round().to(torch.uint8), frames)
    single, _ = read_video(folder / "frame_2.png")
    assert torch.equal((single[:, 0] * 255).round().to(torch.uint8), frames[:, 1])


def _truncated_mp4(tmp_path: Path) -> Path:
    full = write_test_video(tmp_path / "full.mp4", random_frames(30, 32, 32), lossless=False)
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    return cut


def _audio_only(tmp_path: Path) -> Path:
    path = tmp_path / "audio_only.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=44100)
        for i in range(10):
            fr = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            fr.sample_rate, fr.pts = 44100, i * 1024
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _file(name: str, data: bytes):
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


BROKEN = {
    "missing": lambda d: d / "nope.mp4",
    "empty": _file("empty.mp4", b""),
    "text": _file("text.mp4", b"not a video\n"),
    "truncated": _truncated_mp4,
    "audio-only": _audio_only,
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_inputs_raise_video_error(tmp_path: Path, kind: str) -> None:
    path = BROKEN[kind](tmp_path)
    with pytest.raises(VideoError) as info:
        read_video(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_truncated_moov_first_file_is_detected(tmp_path: Path) -> None:
    full = tmp_path / "fast.mp4"
    with av.open(str(full), "w", format="mp4", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for i in range(60):
            img = (np.random.default_rng(i).random((64, 64, 3)) * 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    cut = tmp_path / "fast_cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert read_video(full)[0].shape[1] == 60
    with pytest.raises(VideoError, match="truncated"):
        read_video(cut)


# -- hardening (issue 13, points 4 to 7) -------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, corpus.Case]:
    return {c.kind: c for c in corpus.base_files(tmp_path_factory.mktemp("corpus"))}


@pytest.mark.parametrize(
    "kind", ["raw.h264", "raw_as.mkv", "size_change.h264", "latin1_title.mkv", "cut_stream.mkv"]
)
def test_inputs_that_crashed_the_probe_are_read(corpus_files, kind: str) -> None:
    """Raw annex-B H.264 (any extension), a mid-stream size change, non-UTF-8 metadata and a
    streamable MKV cut short used to raise PermissionError/UnicodeDecodeError from the probe."""
    path = corpus_files[kind].path
    info = probe_video(path)
    frames, fps = read_video(path)
    assert frames.shape == (3, info.frames, info.height, info.width) and fps == info.fps
    windows = list(VideoReader(path).windows(5, 1))
    assert windows[-1][0] + windows[-1][1].shape[1] == info.frames


def test_every_generated_input_reads_or_is_a_video_error(corpus_files) -> None:
    for case in corpus_files.values():
        try:
            read_video(case.path)
        except VideoError as exc:
            assert not case.valid, f"{case.kind}: {exc}"
            assert str(case.path) in str(exc) and "\n" not in str(exc)


def test_every_pyav_failure_while_decoding_is_a_video_error(
    video_file, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyAV raises OSError subclasses (errno 95), ArgumentError (a ValueError) and
    UnicodeDecodeError as well as FFmpegError: none of them may escape as an internal error."""
    path, _ = video_file
    errors = [
        av.error.OSError(95, "Operation not supported"),
        av.error.ArgumentError(22, "Invalid argument"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        av.error.PermissionError(1, "Operation not permitted"),
    ]
    for error in errors:

        def decode(self, *args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(av.container.InputContainer, "decode", decode)
        with pytest.raises(VideoError, match="corrupt or truncated") as info:
            read_video(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["thin_33x1.mkv", "dot_1x1.mov"])
def test_frames_under_two_pixels_are_refused_at_probe_time(corpus_files, kind: str) -> None:
    with pytest.raises(VideoError, match="too small"):
        probe_video(corpus_files[kind].path)


def test_a_two_pixel_wide_video_is_still_read(corpus_files) -> None:
    assert read_video(corpus_files["tall_2x40.mkv"].path)[0].shape == (3, 8, 40, 2)


def test_a_fifo_named_like_a_video_is_refused_without_opening_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)

    def never(*args, **kwargs):
        raise AssertionError("the FIFO was opened: reading it would wait forever")

    monkeypatch.setattr(av, "open", never)
    for read in (probe_video, read_video, VideoReader):
        with pytest.raises(VideoError, match="not a regular file"):
            read(fifo)


def test_broken_timestamps_are_read_in_decoding_order_at_a_sane_rate(tmp_path: Path) -> None:
    """250 H.264 frames one tick apart in 1/12800 s: the container says thousands of fps and a few
    ms, FFmpeg plays all 250 frames. They used to give "truncated (decoded 1 of 250 frames)"."""
    path = corpus.write_without_timestamps(tmp_path / "ticks.mp4", 250)
    info = probe_video(path)
    assert (info.frames, info.rate, info.rate_source) == (250, 25, "assumed")
    frames, fps = read_video(path)
    assert (frames.shape[1], fps) == (250, 25.0)
    assert read_video(path, start=100, num_frames=10)[0].equal(frames[:, 100:110])
    assert sum(w.shape[1] for _, w in VideoReader(path).windows(64, 0)) == 250


def test_an_implausible_rate_is_replaced_by_frames_over_duration(corpus_files) -> None:
    info = probe_video(corpus_files["vfr.mkv"].path)  # 1 ms time base, frames ~40 ms apart
    assert info.rate_source == "duration" and 20 < info.fps < 40
    assert probe_video(corpus_files["slow.mp4"].path).rate == Fraction(2, 3)  # slow, not broken


# -- the reader's one decoding loop and the writer's one quantisation ---------------------------


@pytest.mark.parametrize(("start", "num", "stride"), [(0, None, 1), (17, 8, 1), (5, 6, 3)])
def test_read_video_is_a_slice_of_the_readers_frames(video_file, start, num, stride) -> None:
    path, _ = video_file
    clip, _ = read_video(path, start=start, num_frames=num, stride=stride, size=24)
    frames = torch.stack(list(VideoReader(path, size=24).frames(start)), dim=1)  # [C, T, H, W]
    expected = frames[:, ::stride] if num is None else frames[:, ::stride][:, :num]
    assert clip.dtype == torch.float32 and torch.equal(clip, expected)


def test_image_folder_frames_and_read_agree(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        image = (random_frames(1, 10, 12, seed=i)[:, 0] * 255).round().to(torch.uint8)
        av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image.permute(1, 2, 0).numpy()), format="rgb24"
        ).to_image().save(folder / f"{i}.png")
    reader = VideoReader(folder)
    frames = list(reader)
    assert len(frames) == 3 and frames[0].shape == (3, 10, 12)
    assert torch.equal(torch.stack(frames, dim=1), reader.read())
    assert torch.equal(reader.read(1, 1), frames[1][:, None])


def test_quantised_frames_write_the_same_pictures_as_floats(tmp_path: Path) -> None:
    frames = random_frames(4, 16, 20)
    a = tmp_path / "a.mp4"
    with VideoWriter(a, fps=25, width=20, height=16, lossless=True) as writer:
        writer.write(frames)
    b = tmp_path / "b.mp4"
    with VideoWriter(b, fps=25, width=20, height=16, lossless=True) as writer:
        writer.write(quantize_frames(frames))
    assert quantize_frames(frames).dtype == torch.uint8
    assert torch.equal(read_video(a)[0], read_video(b)[0])
    assert torch.equal(read_video(a)[0], quantize_frames(frames).float() / 255)
