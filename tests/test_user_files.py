"""``separate`` on the files phones, cameras, editors and ``ffmpeg -c copy`` make (issue 24):
turned pictures, high frame rates, lossless trims, odd sizes, cover art, several audio tracks in
codecs MP4 players do not take. Each test builds such a file with PyAV and checks the decoded
outputs: size, orientation, frame count, frame rate and audio streams."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import av.audio.resampler
import numpy as np
import pytest
import torch

import centrifuge.pretrained
import corpus
from centrifuge.cli import main
from centrifuge.video.read import probe_video, read_video

CLIP = ["--clip-len", "8", "--overlap", "2"]


class ScalingModel(torch.nn.Module):
    """``(0.25 x, 0.75 x)``: layers that are the input, darker, so where they face can be seen."""

    n_outputs = 2
    stride = (8, 32, 32)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return torch.stack([0.25 * mixture, 0.75 * mixture], dim=1)  # [B, 2, C, T, H, W]


@pytest.fixture(autouse=True)
def scaling_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(centrifuge.pretrained, "load_model", lambda *a, **k: ScalingModel())


def _separate(source: Path, out: Path) -> tuple[int, Path]:
    code = main(["separate", str(source), "-o", str(out), *CLIP])
    return code, out / source.stem


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def _audio_seconds(path: Path) -> list[float]:
    """How long each audio stream of ``path`` lasts (last packet's end), in stream order."""
    with av.open(str(path)) as c:
        ends = []
        for stream in c.streams.audio:
            packets = [p for p in c.demux(stream) if p.size and p.pts is not None]
            last = max(packets, key=lambda p: p.pts)
            ends.append(float((last.pts + last.duration) * stream.time_base))
            c.seek(0)
        return ends


def _samples(path: Path, stream: int = 0) -> np.ndarray:
    """The first channel of an audio stream, float samples."""
    resampler = av.audio.resampler.AudioResampler(format="fltp")
    with av.open(str(path)) as c:
        frames = [r for f in c.decode(c.streams.audio[stream]) for r in resampler.resample(f)]
    return np.concatenate([f.to_ndarray()[0] for f in frames])


def _stored_pictures(path: Path) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` as stored (no turn applied), decoded by PyAV alone."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


# -- 1: rotation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("degrees", "k"), [(90, 1), (180, 2), (-90, 3)])
def test_a_turned_phone_video_is_read_and_written_upright(
    tmp_path: Path, degrees: int, k: int
) -> None:
    """Stored 48x32 with a display matrix turning it ``degrees`` counter-clockwise (PyAV's and
    FFmpeg's convention): frames are read upright, layers are written upright with no matrix."""
    source = corpus.write(
        tmp_path / "phone.mp4", size=(32, 48), rotation=degrees, pix_fmt="yuv444p"
    )
    info = probe_video(source)
    shown = (48, 32) if k % 2 else (32, 48)  # (H, W)
    assert (info.height, info.width, info.rotation) == (*shown, 90 * k)
    frames, _ = read_video(source)
    upright = np.rot90(_stored_pictures(source), k, axes=(1, 2))  # [T, H, W, 3]
    assert frames.shape == (3, 8, *shown)
    assert torch.equal(frames, torch.from_numpy(upright.copy()).permute(3, 0, 1, 2) / 255)
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    report = _report(folder)
    assert (report["height"], report["width"], report["source"]["rotation"]) == (*shown, 90 * k)
    for name in ("layer_1.mp4", "layer_2.mp4"):
        with av.open(str(folder / name)) as c:
            first = next(c.decode(video=0))
            assert (first.height, first.width, first.rotation) == (*shown, 0)
        layer = read_video(folder / name)[0]
        scale = layer.mean() / frames.mean()  # 0.25 or 0.75
        assert (layer - scale * frames).abs().mean() < 0.03  # the same picture, same way up


# -- 2: high frame rates ----------------------------------------------------------------------


def test_a_1000_fps_clip_keeps_its_rate_and_its_audio_length(tmp_path: Path) -> None:
    source = corpus.write(tmp_path / "fast.mp4", frames=200, rate=1000, audio=True)
    assert probe_video(source).rate == 1000
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    assert _report(folder)["fps"] == 1000 and _report(folder)["fps_source"] == "container"
    for name in ("layer_1.mp4", "preview.mp4"):
        info = probe_video(folder / name)
        assert (info.frames, info.rate) == (200, 1000)
        assert read_video(folder / name)[0].shape[1] == 200
        assert 0.2 <= _audio_seconds(folder / name)[0] <= 0.2 + 0.128  # whole 1024-sample packets


# -- 3: edit lists and mid-GOP starts ---------------------------------------------------------


def test_a_lossless_trim_with_an_edit_list_separates_the_frames_players_show(
    tmp_path: Path,
) -> None:
    source = corpus.write_trimmed(tmp_path / "trim.mp4")
    shown, _ = read_video(source)
    assert shown.shape[1] == 15
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    report = _report(folder)
    assert report["frames"] == 15 and report["source"]["hidden_frames"] == 10
    layer = read_video(folder / "layer_2.mp4")[0]
    assert layer.shape[1] == 15 and probe_video(folder / "layer_2.mp4").rate == 25
    scale = layer.mean() / shown.mean()
    assert (layer - scale * shown).abs().mean() < 0.03  # frame for frame, the shown ones
    assert _audio_seconds(folder / "layer_1.mp4")[0] == pytest.approx(0.6, abs=0.05)


def test_a_file_starting_mid_gop_keeps_its_timing_and_says_what_was_skipped(
    tmp_path: Path,
) -> None:
    """Packets from frame 10 on, the first key frame at frame 25: 12 frames cannot be decoded,
    players show 25 from 0.6 s; the layers' audio starts at that frame too."""
    source = corpus.write_trimmed(tmp_path / "cut.mp4", mid_gop=True)
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    report = _report(folder)
    assert report["frames"] == 25
    assert report["source"]["undecodable_frames"] == 12
    assert report["source"]["first_frame_seconds"] == pytest.approx(0.6)
    info = probe_video(folder / "layer_1.mp4")
    assert (info.frames, info.rate) == (25, 25)
    with av.open(str(folder / "layer_1.mp4")) as c:
        audio = c.streams.audio[0]
        first = next(p for p in c.demux(audio) if p.size)
        assert float(first.pts * audio.time_base) < 0.05  # starts with the video
    assert _audio_seconds(folder / "layer_1.mp4")[0] == pytest.approx(1.0, abs=0.05)


# -- 4: odd sizes -----------------------------------------------------------------------------


def test_layers_of_an_odd_sized_input_keep_its_exact_size(tmp_path: Path) -> None:
    source = corpus.write(tmp_path / "odd.mp4", size=(127, 225), pix_fmt="yuv444p", audio=True)
    frames, _ = read_video(source)
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    assert (_report(folder)["width"], _report(folder)["height"]) == (225, 127)
    for name in ("layer_1.mp4", "layer_2.mp4"):
        info = probe_video(folder / name)
        assert (info.width, info.height, info.frames, info.has_audio) == (225, 127, 8, True)
        layer = read_video(folder / name)[0]
        assert layer.shape == (3, 8, 127, 225)
        scale = layer.mean() / frames.mean()
        assert (layer - scale * frames).abs().mean() < 0.03
    preview = probe_video(folder / "preview.mp4")
    assert preview.width % 2 == preview.height % 2 == 0


# -- 6, 7, 11: audio tracks, cover art --------------------------------------------------------


def test_an_mp3_with_cover_art_is_not_a_video(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = corpus.write_cover_art_mp3(tmp_path / "song.mp3")
    code, folder = _separate(source, tmp_path / "out")
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert str(source) in lines[0] and "cover picture" in lines[0]
    assert not folder.exists()


def test_every_audio_track_is_kept_and_those_mp4_cannot_play_become_aac(tmp_path: Path) -> None:
    """An MKV with AAC, Vorbis, Opus and PCM tracks: all four are in every layer and the preview,
    AAC copied, the others transcoded to AAC, each as long as the video."""
    tracks = ("aac", "vorbis", "libopus", "pcm_s16le")
    source = corpus.write(tmp_path / "tracks.mkv", frames=25, audio=tracks)
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    plan = _report(folder)["source"]["audio"]
    assert [t["written"] for t in plan] == ["copied", "aac", "aac", "aac"]
    assert [t["codec"] for t in plan] == ["aac", "vorbis", "opus", "pcm_s16le"]
    for name in ("layer_1.mp4", "layer_2.mp4", "preview.mp4"):
        with av.open(str(folder / name)) as c:
            assert [s.codec_context.name for s in c.streams.audio] == ["aac"] * 4
        for i, rate in enumerate([8000, 8000, 48000, 8000]):
            assert _samples(folder / name, i).shape[0] / rate == pytest.approx(1.0, abs=0.15)
        assert all(s == pytest.approx(1.0, abs=0.15) for s in _audio_seconds(folder / name))


def test_pcm_audio_in_a_mov_is_written_as_aac_from_the_first_sample(tmp_path: Path) -> None:
    source = corpus.write(tmp_path / "camera.mov", frames=25, audio="pcm_s16le")
    code, folder = _separate(source, tmp_path / "out")
    assert code == 0
    with av.open(str(folder / "layer_1.mp4")) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    samples, original = _samples(folder / "layer_1.mp4"), _samples(source)
    n = min(len(samples), len(original), 7000)
    assert np.corrcoef(samples[1024 : n - 1024], original[1024 : n - 1024])[0, 1] > 0.9
    assert probe_video(folder / "layer_1.mp4").rate == Fraction(25)


# -- 9: result folders are never inputs -------------------------------------------------------


def test_results_inside_the_input_folder_are_not_separated_again(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    corpus.write(folder / "a.mp4")
    corpus.write(folder / "b.mp4", seed=1)
    out = folder / "separated"
    for _ in range(2):  # the second run finds the first one's layers beside the inputs
        assert main(["separate", str(folder), "-o", str(out), *CLIP, "--force"]) == 0
        assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    assert _report(out / "a")["input"] == str(folder / "a.mp4")


# -- 5: extreme aspect ratios -----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4000, 64), (64, 4000)])
def test_previews_of_extreme_aspect_ratios_stay_legible_and_playable(
    tmp_path: Path, shape: tuple[int, int]
) -> None:
    """A 64x4000 strip and a 4000x64 banner: preview panels at least 60 px wide and at most
    1920 px all together, the contact sheet no wider than that either."""
    from PIL import Image

    from centrifuge.inference.preview import PreviewWriter, write_contact_sheet

    h, w = shape
    frames = torch.rand(3, 3, h, w)
    writer = PreviewWriter(tmp_path / "preview.mp4", fps=25, shape=shape, n_layers=2, frames=3)
    writer.write(frames, torch.stack([0.25 * frames, 0.75 * frames]))
    contact = writer.close()
    info = probe_video(tmp_path / "preview.mp4")
    assert info.width <= 1920 and info.height <= 240 + 16
    assert info.width // 3 >= 60 and info.height >= 64
    write_contact_sheet(contact, tmp_path / "contact.png")
    with Image.open(tmp_path / "contact.png") as sheet:
        assert sheet.width <= 6 * 1920 // 3 and sheet.height <= 3 * 122 + 20
