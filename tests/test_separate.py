"""``centrifuge separate``: the files it writes, what they keep of the input, and how it fails."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import centrifuge
import centrifuge.pretrained
from centrifuge.checkpoint import write_weights
from centrifuge.cli import main
from centrifuge.models.registry import build_model
from centrifuge.video.read import probe_video, read_video
from conftest import ScaledCopies, random_frames, serve_as_model, write_test_video

REPORT_KEYS = {
    "input",
    "model",
    "device",
    "frames",
    "fps",
    "fps_source",
    "width",
    "height",
    "n_outputs",
    "layers",
    "preview",
    "contact_sheet",
    "seconds",
}
NEW_REPORT_KEYS = {"settings", "version", "created_utc", "input_mean_brightness", "source"}
LAYER_KEYS = {"file", "index", "outputs", "mean_brightness", "difference_to_input"}
NTSC = Fraction(30000, 1001)


@pytest.fixture
def swapping_model(monkeypatch: pytest.MonkeyPatch) -> ScaledCopies:
    """``(0.25 x, 0.75 x)``, swapped on every other call: what ``--model`` loads."""
    return serve_as_model(monkeypatch, ScaledCopies(swap=True))


def _separate(*args: str | Path) -> int:
    return main(["separate", *map(str, args)])


def _decoded_frames(path: Path) -> int:
    return read_video(path)[0].shape[1]


def _final_files(folder: Path, n_layers: int) -> list[Path]:
    layers = [folder / f"layer_{i + 1}.mp4" for i in range(n_layers)]
    return [*layers, folder / "preview.mp4", folder / "contact.png", folder / "report.json"]


def _check_outputs(folder: Path, source: Path, n_layers: int) -> dict:
    """Exactly the final files, each complete; the layers and preview keep frame count and rate."""
    assert sorted(folder.iterdir()) == sorted(_final_files(folder, n_layers))  # nothing hidden left
    src = probe_video(source)
    report = json.loads((folder / "report.json").read_text())
    assert set(report) == REPORT_KEYS | NEW_REPORT_KEYS  # DESIGN's keys, and more
    assert all(set(layer) == LAYER_KEYS for layer in report["layers"])
    assert [layer["file"] for layer in report["layers"]] == [
        f"layer_{i + 1}.mp4" for i in range(n_layers)
    ]
    assert (report["preview"], report["contact_sheet"]) == ("preview.mp4", "contact.png")
    assert report["input"] == str(source)
    assert report["frames"] == src.frames
    assert (report["width"], report["height"]) == (src.width, src.height)
    assert report["fps"] == pytest.approx(src.fps, abs=1e-9)
    for video in [*folder.glob("layer_*.mp4"), folder / "preview.mp4"]:
        info = probe_video(video)
        assert (info.frames, info.rate) == (src.frames, src.rate), video.name
        assert _decoded_frames(video) == src.frames, video.name
        if video.name.startswith("layer_"):  # the input's exact size, odd or even
            assert (info.width, info.height) == (src.width, src.height)
            assert info.has_audio == src.has_audio
    with Image.open(folder / "contact.png") as sheet:
        sheet.load()
    return report


# -- what it writes ---------------------------------------------------------------------------


def test_outputs_keep_frame_count_ntsc_rate_odd_size_and_audio(tmp_path: Path) -> None:
    source = write_test_video(
        tmp_path / "ntsc.mp4", random_frames(23, 35, 51), NTSC, audio_seconds=1.0
    )
    assert probe_video(source).has_audio and probe_video(source).rate == NTSC
    assert _separate(source, "-o", tmp_path / "out", "--model", "tiny", "--clip-len", "16") == 0
    report = _check_outputs(tmp_path / "out" / "ntsc", source, 2)
    assert (report["model"], report["n_outputs"], report["device"]) == ("tiny", 2, "cpu")
    assert sorted(layer["index"] for layer in report["layers"]) == [0, 1]
    with av.open(str(tmp_path / "out" / "ntsc" / "layer_1.mp4")) as layer:
        audio = layer.streams.audio[0]
        packets = [p for p in layer.demux(audio) if p.size]
        seconds = float((packets[-1].pts + packets[-1].duration) * audio.time_base)
    assert 0.5 < seconds <= 23 / NTSC + 0.05  # kept, cut to the video's length


def test_real_clip_outputs_keep_its_frame_count_and_rate(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "layered" / "reflection__Li_Brown__00004_Input.mp4"  # 444x360, 0.67 fps
    assert _separate(source, "-o", tmp_path, "--model", "tiny", "--size", "64") == 0
    _check_outputs(tmp_path / source.stem, source, 2)


def test_layers_all_writes_every_output_of_the_model(tmp_path: Path) -> None:
    model = build_model("tiny", n_outputs=3)
    weights = write_weights(model.state_dict(), tmp_path / "3.safetensors", spec=model.config)
    source = write_test_video(tmp_path / "clip.mp4", random_frames(9, 32, 40))
    assert _separate(source, "-o", tmp_path / "out", "--model", weights, "--layers", "all") == 0
    report = _check_outputs(tmp_path / "out" / "clip", source, 4)  # 1 + 2 split, then the rest
    assert report["n_outputs"] == 3
    groups = [layer["outputs"] for layer in report["layers"]]
    assert sorted(groups[0] + groups[1]) == [0, 1, 2]  # the written two split the outputs
    assert {tuple(g) for g in groups if len(g) == 1} == {(0,), (1,), (2,)}  # each output alone
    assert [layer["index"] for layer in report["layers"]] == [g[0] for g in groups]


def test_several_inputs_and_a_folder_are_all_separated(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    (videos / "more").mkdir(parents=True)
    inputs = [
        write_test_video(videos / "a.mp4", random_frames(6, 32, 32, seed=1)),
        write_test_video(videos / "more" / "b.mp4", random_frames(7, 32, 32, seed=2)),
        write_test_video(tmp_path / "c.mp4", random_frames(5, 32, 32, seed=3)),
    ]
    assert _separate(videos, inputs[2], "-o", tmp_path / "out", "--model", "tiny") == 0
    for source in inputs:
        _check_outputs(tmp_path / "out" / source.stem, source, 2)


def test_layer_1_is_the_output_closest_to_the_input_in_every_frame(
    tmp_path: Path, swapping_model: ScaledCopies
) -> None:
    frames = random_frames(40, 32, 48)
    source = write_test_video(tmp_path / "clip.mp4", frames)
    assert _separate(source, "-o", tmp_path, "--clip-len", "8", "--overlap", "2") == 0
    assert len(swapping_model.shapes) > 2  # the model swapped its outputs several times
    layer_1, _ = read_video(tmp_path / "clip" / "layer_1.mp4")
    layer_2, _ = read_video(tmp_path / "clip" / "layer_2.mp4")
    err_1 = (layer_1 - 0.75 * frames).abs().mean(dim=(0, 2, 3))  # per frame
    err_2 = (layer_2 - 0.25 * frames).abs().mean(dim=(0, 2, 3))
    assert err_1.max() < 0.05 and err_2.max() < 0.05  # H.264 error only; swapped would be ~0.25


def test_size_processes_at_the_short_side_and_keeps_the_input_size(
    tmp_path: Path, swapping_model: ScaledCopies
) -> None:
    frames = random_frames(10, 96, 144)
    source = write_test_video(tmp_path / "big.mp4", frames)
    assert _separate(source, "-o", tmp_path, "--size", "64", "--clip-len", "16") == 0
    assert {shape[-2:] for shape in swapping_model.shapes} == {(64, 96)}
    _check_outputs(tmp_path / "big", source, 2)
    layer_1, _ = read_video(tmp_path / "big" / "layer_1.mp4")
    assert (layer_1 - 0.75 * frames).abs().mean() < 0.03  # resized down and back up


def _fixed_model() -> ScaledCopies:
    """Four outputs ``(0.8 x, 0.2 x, 0.7 x, 0.3 x)``: of the three 2 + 2 groupings, ``{0, 2}`` and
    ``{1, 3}`` have the means farthest apart (0.75 x and 0.25 x)."""
    return ScaledCopies((0.8, 0.2, 0.7, 0.3))


def test_layers_all_keeps_layer_1_and_layer_2_of_the_default_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_as_model(monkeypatch, _fixed_model())
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 32, 32))
    assert _separate(source, "-o", tmp_path / "two") == 0
    assert _separate(source, "-o", tmp_path / "all", "--layers", "all") == 0
    two = _check_outputs(tmp_path / "two" / "clip", source, 2)
    every = _check_outputs(tmp_path / "all" / "clip", source, 6)
    closer_first = [[0, 2], [1, 3]]  # the cluster means, the one closer to the input first
    assert [layer["outputs"] for layer in two["layers"]] == closer_first
    rest = [[0], [2], [3], [1]]  # then every output alone, by closeness to the input
    assert [layer["outputs"] for layer in every["layers"]] == closer_first + rest
    for name in ("layer_1.mp4", "layer_2.mp4"):
        assert (tmp_path / "two" / "clip" / name).read_bytes() == (
            tmp_path / "all" / "clip" / name
        ).read_bytes()


def test_report_holds_settings_version_utc_time_and_layer_statistics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_as_model(monkeypatch, _fixed_model())
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 32, 32))
    args = ("-o", tmp_path, "--size", "32", "--clip-len", "4", "--overlap", "1", "--tile", "96")
    assert _separate(source, *args) == 0
    report = _check_outputs(tmp_path / "clip", source, 2)
    assert report["settings"] == {
        "model": "small",
        "layers": "2",
        "size": 32,
        "clip_len": 4,
        "overlap": 1,
        "tile": 96,
    }
    assert report["version"] == centrifuge.__version__
    created = datetime.fromisoformat(report["created_utc"])
    assert created.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 3600
    brightness = report["input_mean_brightness"]
    layer_1, layer_2 = report["layers"]
    assert layer_1["mean_brightness"] == pytest.approx(0.75 * brightness, abs=0.02)
    assert layer_2["mean_brightness"] == pytest.approx(0.25 * brightness, abs=0.02)
    assert 0 < layer_1["difference_to_input"] < layer_2["difference_to_input"]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_still_image_gives_png_layers_and_a_still_sized_contact_sheet(
    suffix: str, tmp_path: Path, swapping_model: ScaledCopies
) -> None:
    image = (random_frames(1, 45, 61)[:, 0] * 255).round().byte().permute(1, 2, 0).numpy()
    source = tmp_path / f"photo{suffix}"
    Image.fromarray(image).save(source)
    assert main(["separate", str(source), "-o", str(tmp_path / "out"), "-n", "tiny"]) == 0
    folder = tmp_path / "out" / "photo"
    assert sorted(p.name for p in folder.iterdir()) == [
        "contact.png",
        "layer_1.png",
        "layer_2.png",
        "report.json",
    ]
    report = json.loads((folder / "report.json").read_text())
    assert set(report) == REPORT_KEYS | NEW_REPORT_KEYS
    assert (report["frames"], report["width"], report["height"]) == (1, 61, 45)
    assert report["preview"] is None
    assert [layer["file"] for layer in report["layers"]] == ["layer_1.png", "layer_2.png"]
    with Image.open(folder / "layer_1.png") as layer_1:
        assert layer_1.size == (61, 45)
        closer = np.asarray(layer_1.convert("RGB"), dtype=np.float32) / 255
    reference = np.asarray(Image.open(source).convert("RGB"), dtype=np.float32) / 255
    assert np.abs(closer - 0.75 * reference).mean() < 0.02  # the 0.75 x output, losslessly
    with Image.open(folder / "contact.png") as sheet:  # input | layer 1 | layer 2, readable
        assert sheet.height >= 160 and sheet.width >= 3 * sheet.height


# -- failures ---------------------------------------------------------------------------------


def _faststart_mp4(path: Path, frames: torch.Tensor) -> Path:
    """An MP4 with its index first, so that a cut file still opens and fails while decoding."""
    data = (frames * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = data.shape[2], data.shape[1], "yuv420p"
        for i, image in enumerate(data):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _make_corrupt(kind: str, folder: Path) -> Path:
    path = folder / f"{kind}.mp4"
    if kind == "text":
        path.write_text("this is not a video\n")
    elif kind == "empty":
        path.touch()
    elif kind == "cut_index_last":  # the index is lost: fails on opening
        data = write_test_video(folder / "whole.mp4", random_frames(30, 32, 32)).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:  # "cut_index_first": opens, separates the first windows, then fails
        data = _faststart_mp4(folder / "whole.mp4", random_frames(60, 32, 48)).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["text", "empty", "cut_index_last", "cut_index_first"])
def test_corrupt_input_fails_with_one_line_and_leaves_nothing(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture, swapping_model: ScaledCopies
) -> None:
    source = _make_corrupt(kind, tmp_path)
    out = tmp_path / "out"
    assert _separate(source, "-o", out, "--clip-len", "8", "--overlap", "2") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and str(source) in errors[0], err
    assert "Traceback" not in err
    assert not (out / kind).exists()  # not even an empty folder or a hidden temporary file
    if kind == "cut_index_first":
        assert swapping_model.shapes  # it did fail half-way


def test_a_bad_input_is_reported_and_the_good_ones_are_still_separated(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good = [
        write_test_video(tmp_path / f"{name}.mp4", random_frames(5, 32, 32, seed=seed))
        for seed, name in enumerate(["first", "last"])
    ]
    bad = _make_corrupt("text", tmp_path)
    assert _separate(good[0], bad, good[1], "-o", tmp_path / "out", "--model", "tiny") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [
        f"centrifuge separate: error: {bad}: not a readable video or image "
        "(corrupt or unknown format)."
    ]
    for source in good:
        _check_outputs(tmp_path / "out" / source.stem, source, 2)
    assert not (tmp_path / "out" / "text").exists()


@pytest.mark.parametrize("name", ["layer_2.mp4", "contact.png"])
def test_existing_outputs_are_kept_without_force_and_replaced_with_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture, swapping_model: ScaledCopies
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 32, 32))
    folder = tmp_path / "out" / "clip"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(b"keep me")
    assert _separate(source, "-o", tmp_path / "out") == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(folder.iterdir()) == [folder / name]
    assert (folder / name).read_bytes() == b"keep me"
    assert not swapping_model.shapes  # refused before any work
    assert _separate(source, "-o", tmp_path / "out", "--force") == 0
    _check_outputs(folder, source, 2)


class FailingModel(ScaledCopies):
    """Works for one window, then fails as a model running out of memory would."""

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        if self.shapes:
            raise RuntimeError("out of memory")
        return super().forward(mixture)


def test_a_model_failing_half_way_leaves_no_files_and_no_threads(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_as_model(monkeypatch, FailingModel())
    source = write_test_video(tmp_path / "clip.mp4", random_frames(40, 32, 48))
    threads = set(threading.enumerate())
    assert _separate(source, "-o", tmp_path / "out", "--clip-len", "8", "--overlap", "2") == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: out of memory" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "clip").exists()
    left = set(threading.enumerate()) - threads  # no decoder or encoder thread still running
    assert all(thread.name == "tqdm_monitor" for thread in left), left


# -- long runs in a separate process ----------------------------------------------------------


def _writing_layers(out: Path) -> bool:
    return any(p.stat().st_size > 0 for p in out.glob(".long.work-*/.layer_*.partial.mp4"))


def _writing_preview(out: Path) -> bool:
    return any(p.stat().st_size > 0 for p in out.glob(".long.work-*/.preview.*.partial.mp4"))


@pytest.mark.parametrize("until", [_writing_layers, _writing_preview])
def test_sigkill_leaves_no_result_and_the_next_run_cleans_up(tmp_path: Path, until) -> None:
    source = write_test_video(tmp_path / "long.mp4", random_frames(64, 32, 48))
    out = tmp_path / "out"
    args = [str(source), "-o", str(out), "--model", "tiny", "--clip-len", "16", "--overlap", "4"]
    command = [sys.executable, "-m", "centrifuge", "separate", *args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline and not until(out):
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "it finished before it could be killed"
    present = [p for p in out.rglob("*") if p.is_file()]
    assert present, "killed before anything was written"
    assert not (out / "long").exists()  # a result folder is complete or absent
    assert all(p.relative_to(out).parts[0].startswith(".") for p in present)  # hidden work only
    assert _separate(*args) == 0  # not refused: leftovers are not a result
    assert sorted(out.iterdir()) == [out / "long"]  # the killed run's work files are gone
    _check_outputs(out / "long", source, 2)


CHILD = """
import ctypes, json, sys
import torch
import centrifuge.pretrained
from centrifuge.cli import main
from centrifuge.video.write import VideoWriter


class Model(torch.nn.Module):
    n_outputs = 2
    stride = (8, 32, 32)

    def forward(self, mixture):
        return torch.stack([0.25 * mixture, 0.75 * mixture], dim=1)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2


def heap_in_use():  # bytes malloc has handed out (torch, numpy and FFmpeg all allocate there)
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


peak = 0
write = VideoWriter.write


def measured_write(self, frames):
    global peak
    write(self, frames)
    peak = max(peak, heap_in_use())


VideoWriter.write = measured_write  # layers (pass 1) and preview (pass 2)
centrifuge.pretrained.load_model = lambda *args, **kwargs: Model()
before = heap_in_use()
code = main(["separate", sys.argv[1], "-o", sys.argv[2], "--clip-len", "16", "--overlap", "4"])
print(json.dumps([code, peak - before]))
"""


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="measures the heap with glibc's mallinfo2")
def test_memory_is_bounded_by_the_window_not_the_video(tmp_path: Path) -> None:
    """The heap peaks as high for 200 frames as for 2,000 frames of the same size.

    Holding the video would cost 2,000 x 3 x 32 x 48 x 4 bytes = 37 MB per float stream (the input
    and each layer), 9 MB per uint8 stream; the pipeline holds one window of 16 frames. Bytes in
    use by malloc are counted after every write to a video, in a fresh process per length (peak
    RSS would be a poorer measure: it moves by tens of MB with the allocator's history).
    """
    (tmp_path / "child.py").write_text(CHILD)
    runs = []
    for frames in (200, 2000):
        video = write_test_video(tmp_path / f"v{frames}.mp4", random_frames(frames, 32, 48, frames))
        command = [sys.executable, str(tmp_path / "child.py"), str(video), str(tmp_path / "out")]
        runs.append(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        )
    (code_short, peak_short), (code_long, peak_long) = [
        json.loads(run.communicate(timeout=300)[0].splitlines()[-1]) for run in runs
    ]
    assert code_short == code_long == 0
    assert probe_video(tmp_path / "out" / "v2000" / "layer_1.mp4").frames == 2000
    assert peak_short > 2**20  # the measure works: it sees the window buffers
    assert peak_long - peak_short < 6 * 2**20
