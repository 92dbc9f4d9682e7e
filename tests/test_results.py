"""Where ``separate`` writes and how its results appear (issue 13, points 2 and 8 to 12): nothing
outside ``-o``, a result folder complete or absent, one run per folder, leftovers cleaned, output
errors in one line, windows bounded by memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import centrifuge.inference.files
import centrifuge.inference.preview
import centrifuge.inference.separator
import centrifuge.pretrained
from centrifuge.cli import main
from centrifuge.errors import CentrifugeError
from centrifuge.inference.files import (
    MEMORY_MARGIN,
    SeparateOptions,
    check_window_memory,
    separate_file,
    window_bytes,
)
from centrifuge.inference.results import result_lock, safe_name
from centrifuge.inference.separator import Separator
from centrifuge.models.registry import build_model
from conftest import ScaledCopies, random_frames, serve_as_model, write_test_video

FINAL = {"layer_1.mp4", "layer_2.mp4", "preview.mp4", "contact.png", "report.json"}


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> ScaledCopies:
    """``(0.25 x, 0.75 x)``, what ``--model`` loads."""
    return serve_as_model(monkeypatch, ScaledCopies())


def _separate(*args: str | Path) -> int:
    return main(["separate", *map(str, args)])


def _one_error_line(capsys: pytest.CaptureFixture, *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert all(needle in err[0] for needle in needles), err
    return err[0]


def _tree(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


# -- point 2: names ---------------------------------------------------------------------------


def test_safe_name_keeps_every_result_inside_the_output_folder() -> None:
    assert safe_name("..") == "_.." and safe_name(".") == "_." and safe_name("") == "_"
    assert safe_name(".hidden") == "_.hidden"  # never a hidden name: those are the work files
    assert safe_name("a\\b") == "a_b" and safe_name("tab\there") == "tab_here"
    assert safe_name("clip") == "clip" and safe_name("ünï -x") == "ünï -x"
    long = safe_name("é" * 300)
    assert len(long.encode()) <= 200 and "/" not in long
    cut = safe_name("視" * 100)  # 3 bytes each: cut on a character boundary
    assert cut == "視" * 66 and cut.encode().decode() == cut


def test_dot_stems_write_into_safe_folders_inside_o(
    tmp_path: Path, model: ScaledCopies, capsys: pytest.CaptureFixture
) -> None:
    """``...mp4`` (stem ``..``) wrote its results into the parent of ``-o``; ``..mp4`` (stem
    ``.``) into ``-o`` itself."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    frames = random_frames(4, 32, 32)
    sources = [write_test_video(inputs / name, frames) for name in ("...mp4", "..mp4", ".mp4")]
    out = tmp_path / "nest" / "out"
    out.mkdir(parents=True)
    before = _tree(tmp_path)
    assert _separate(*sources, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["_.", "_..", "_.mp4"]
    for folder in out.iterdir():
        assert {p.name for p in folder.iterdir()} == FINAL
    assert _tree(tmp_path) - before == {
        p.relative_to(tmp_path) for p in out.rglob("*")
    }  # nothing anywhere else


def test_two_inputs_never_share_a_folder_silently(
    tmp_path: Path, model: ScaledCopies, capsys: pytest.CaptureFixture
) -> None:
    frames = random_frames(4, 32, 32)
    first = write_test_video(tmp_path / "a_b.mp4", frames)
    second = write_test_video(tmp_path / "a\\b.mp4", frames)
    assert _separate(first, second, "-o", tmp_path / "out") == 2
    _one_error_line(capsys, str(second), "same result folder", str(first))
    report = json.loads((tmp_path / "out" / "a_b" / "report.json").read_text())
    assert report["input"] == str(first)


# -- point 8: all or nothing ------------------------------------------------------------------


@pytest.mark.parametrize("step", ["PreviewWriter.close", "write_contact_sheet", "write_report"])
def test_a_late_failure_leaves_no_result_and_keeps_the_earlier_one(
    step: str, tmp_path: Path, model: ScaledCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 32, 32))
    out = tmp_path / "out"
    assert _separate(source, "-o", out) == 0
    earlier = {p.name: p.read_bytes() for p in (out / "clip").iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError(f"{step} failed")

    owner, name = {
        "PreviewWriter.close": (centrifuge.inference.preview.PreviewWriter, "close"),
    }.get(step, (centrifuge.inference.files, step))
    monkeypatch.setattr(owner, name, fail)
    assert _separate(source, "-o", out, "--force") == 1
    assert {p.name: p.read_bytes() for p in (out / "clip").iterdir()} == earlier
    assert sorted(out.iterdir()) == [out / "clip"]  # no work folder, no lock left
    (out / "clip" / "report.json").unlink()
    for p in (out / "clip").iterdir():
        p.unlink()
    (out / "clip").rmdir()
    assert _separate(source, "-o", out) == 1
    assert list(out.iterdir()) == []  # a first run that fails late leaves nothing at all


# -- point 9: one run per result folder -------------------------------------------------------


def test_a_result_folder_in_use_is_refused_with_exit_2(
    tmp_path: Path, model: ScaledCopies, capsys: pytest.CaptureFixture
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(4, 32, 32))
    out = tmp_path / "out"
    out.mkdir()
    with result_lock(out / "clip"):
        assert _separate(source, "-o", out) == 2
        _one_error_line(capsys, str(out / "clip"), "in use")
        assert not model.shapes or not (out / "clip").exists()
    assert _separate(source, "-o", out) == 0  # free again, and the lock file is gone
    assert sorted(p.name for p in out.iterdir()) == ["clip"]


# -- point 10: output errors ------------------------------------------------------------------


def test_o_that_is_a_file_is_one_line(
    tmp_path: Path, model: ScaledCopies, capsys: pytest.CaptureFixture
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(4, 32, 32))
    (tmp_path / "file").write_text("keep")
    assert _separate(source, "-o", tmp_path / "file") == 2
    _one_error_line(capsys, str(tmp_path / "file"), "not a folder")
    assert _separate(source, "-o", tmp_path / "file" / "sub") == 2
    _one_error_line(capsys, str(tmp_path / "file" / "sub"), "Not a directory")
    assert (tmp_path / "file").read_text() == "keep"


def test_a_result_path_that_is_not_a_result_folder_is_never_replaced(
    tmp_path: Path, model: ScaledCopies, capsys: pytest.CaptureFixture
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(4, 32, 32))
    (tmp_path / "out" / "clip").mkdir(parents=True)
    (tmp_path / "out" / "clip" / "notes.txt").write_text("mine")
    assert _separate(source, "-o", tmp_path / "out", "--force") == 2
    _one_error_line(capsys, "notes.txt", "not a centrifuge result")
    assert (tmp_path / "out" / "clip" / "notes.txt").read_text() == "mine"


# -- point 11: leftovers ----------------------------------------------------------------------


def test_force_replaces_the_whole_result_and_stale_work_files_are_cleaned(
    tmp_path: Path, model: ScaledCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(4, 32, 32))
    out, folder = tmp_path / "out", tmp_path / "out" / "clip"
    model.scales, model.n_outputs = (0.2, 0.4, 0.6, 0.8), 4
    assert _separate(source, "-o", out, "--layers", "all") == 0
    assert {"layer_3.mp4", "layer_4.mp4"} <= {p.name for p in folder.iterdir()}
    (folder / ".work-abc123").mkdir()  # what earlier versions left after a kill
    (folder / ".work-abc123" / "out_0.mp4").write_bytes(b"x")
    (folder / ".preview.k1ll.partial.mp4").write_bytes(b"x")
    (out / ".clip.work-abcd1234").mkdir()  # what a killed run of this version leaves
    (out / ".clip.lock").touch()
    other = out / ".other.work-abcd1234"  # another input's work: not ours to remove
    other.mkdir()
    assert _separate(source, "-o", out, "--force") == 0  # 2 layers now
    assert {p.name for p in folder.iterdir()} == FINAL  # no stale layer_3, layer_4
    assert sorted(p.name for p in out.iterdir()) == [".other.work-abcd1234", "clip"]


def test_leftovers_alone_are_not_a_result_to_protect(tmp_path: Path, model: ScaledCopies) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(4, 32, 32))
    folder = tmp_path / "out" / "clip"
    folder.mkdir(parents=True)
    (folder / ".preview.k1ll.partial.mp4").write_bytes(b"x")
    assert _separate(source, "-o", tmp_path / "out") == 0  # no --force needed
    assert {p.name for p in folder.iterdir()} == FINAL


# -- point 12: memory -------------------------------------------------------------------------


def test_windows_that_do_not_fit_are_shortened_and_refused_only_below_eight_frames(
    tmp_path: Path, model: ScaledCopies, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Any size runs with the default settings: windows too long for memory are shortened (to a
    multiple of 8 frames, said in report.json); only when 8 frames do not fit is the input refused,
    with a --size that then works."""
    source = write_test_video(tmp_path / "big.mp4", random_frames(20, 360, 640), lossless=False)
    room = window_bytes((360, 640), 12, 2) / MEMORY_MARGIN  # 12 native frames fit, not 32
    monkeypatch.setattr(centrifuge.inference.files, "available_memory", lambda: room)
    assert _separate(source, "-o", tmp_path / "out", "--clip-len", "32") == 0
    report = json.loads((tmp_path / "out" / "big" / "report.json").read_text())
    assert (report["settings"]["clip_len"], report["settings"]["overlap"]) == (8, 2)
    assert report["frames"] == 20 and {s[2] for s in model.shapes} == {8}
    room = window_bytes((360, 640), 4, 2) / MEMORY_MARGIN  # not even 8 frames
    monkeypatch.setattr(centrifuge.inference.files, "available_memory", lambda: room)
    assert _separate(source, "-o", tmp_path / "o2") == 2
    line = _one_error_line(capsys, str(source), "GiB", "--size")
    assert not (tmp_path / "o2" / "big").exists()
    size = int(line.split("--size ")[1].split(".")[0].split()[0])
    assert window_bytes((size, size * 640 // 360), 8, 2) <= room * MEMORY_MARGIN
    assert _separate(source, "-o", tmp_path / "o2", "--size", size) == 0


def test_with_size_frames_are_resized_while_decoding(
    tmp_path: Path, model: ScaledCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a full-resolution window when --size is set: every decoded window, model input and
    layer chunk is at the processing size; the layer files are at the input size."""
    source = write_test_video(tmp_path / "big.mp4", random_frames(5, 720, 1280), lossless=False)
    seen: list[tuple[int, ...]] = []
    to_tensor = centrifuge.video.read.to_frames_tensor

    def record(arrays):
        frames = to_tensor(arrays)
        seen.append(tuple(frames.shape))
        return frames

    monkeypatch.setattr(centrifuge.video.read, "to_frames_tensor", record)
    limit = window_bytes((32, 57), 32, 2)  # far less than one native window
    options = SeparateOptions(memory_limit=limit)
    separator = Separator(model, clip_len=32, overlap=8, size=32)
    report = separate_file(separator, source, tmp_path / "out", options)
    assert {s[-2:] for s in seen} == {(32, 57)}  # decoded windows
    assert {s[-2:] for s in model.shapes} == {(32, 57)}  # the processing size, never native
    assert (report["width"], report["height"], report["frames"]) == (1280, 720, 5)
    with pytest.raises(CentrifugeError, match="--size"):
        check_window_memory(source, (720, 1280), clip_len=32, overlap=8, n_outputs=2, limit=limit)


def test_a_real_tiny_model_separates_at_the_processing_size(tmp_path: Path) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 96, 128))
    model = build_model("tiny").eval()
    separator = Separator(model, clip_len=8, overlap=2, size=48, backend="torch")
    report = separate_file(separator, source, tmp_path / "out")
    assert (report["width"], report["height"], report["frames"]) == (128, 96, 6)


def test_a_full_disk_or_forbidden_folder_anywhere_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Any command (train's checkpoints, evaluate's JSON...): the machine's state, not a bug."""
    import errno

    import centrifuge.cli.tools

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/last.pt")

    monkeypatch.setattr(centrifuge.cli.tools, "cmd_models", full)
    assert main(["models"]) == 2
    assert capsys.readouterr().err.strip() == (
        "centrifuge models: error: /runs/x/last.pt: No space left on device."
    )

    def bug(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(centrifuge.cli.tools, "cmd_models", bug)
    assert main(["models"]) == 1  # a bad descriptor is ours: still an internal error
    assert "internal error" in capsys.readouterr().err


def test_every_name_of_a_result_is_recognised_as_a_result_file() -> None:
    """One builder of the names: --force replaces exactly what a run writes."""
    import centrifuge.inference.results as results

    for still in (False, True):
        paths = results.result_files(Path("out") / "clip", 3, still)
        files = [*paths["layers"], paths["preview"], paths["contact"], paths["report"]]
        names = [p.name for p in files if p is not None]
        assert len(names) == (5 if still else 6)
        assert all(results._RESULT_FILE.fullmatch(name) for name in names), names
        assert paths["folder"] == results.result_folder("out", "some/where/clip.mp4")
