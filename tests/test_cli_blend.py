from __future__ import annotations

from pathlib import Path

from centrifuge.cli import main
from centrifuge.video.read import probe_video, read_video
from conftest import random_frames, write_test_video


def test_blend_two_real_clips(shared_data: Path, tmp_path: Path) -> None:
    a = shared_data / "train" / "sam2__01_dog.mp4"
    b = shared_data / "train" / "propainter__bmx-trees.mp4"
    out = tmp_path / "mix.mp4"
    assert main(["blend", str(a), str(b), "-o", str(out), "--size", "120"]) == 0
    info = probe_video(out)
    assert info.frames == 80  # cut to the shorter input
    assert abs(info.fps - probe_video(a).fps) < 1e-9
    assert min(info.width, info.height) == 120


def test_blend_weights_are_applied(tmp_path: Path) -> None:
    a = write_test_video(tmp_path / "a.mp4", random_frames(6, 32, 32, 1) * 0 + 0.2)
    b = write_test_video(tmp_path / "b.mp4", random_frames(6, 32, 32, 2) * 0 + 1.0)
    out = tmp_path / "m.mp4"
    assert main(["blend", str(a), str(b), "-o", str(out), "--alpha", "0.25"]) == 0
    mix, _ = read_video(out)
    assert abs(mix.mean().item() - (0.75 * 0.2 + 0.25 * 1.0)) < 0.02


def test_blend_refuses_to_overwrite_and_bad_inputs(tmp_path: Path, capsys) -> None:
    a = write_test_video(tmp_path / "a.mp4", random_frames(4, 32, 32, 1))
    out = tmp_path / "m.mp4"
    out.write_bytes(b"keep")
    assert main(["blend", str(a), str(a), "-o", str(out)]) == 2
    assert out.read_bytes() == b"keep"
    (tmp_path / "bad.mp4").write_text("text")
    assert main(["blend", str(a), str(tmp_path / "bad.mp4"), "-o", str(tmp_path / "n.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("error:" in line and "Traceback" not in line for line in err)
    assert not (tmp_path / "n.mp4").exists()
