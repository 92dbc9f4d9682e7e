from __future__ import annotations

import json
from pathlib import Path

from centrifuge import reproduce as rep
from centrifuge.cli import main


def test_table1_writes_markdown_chart_and_json(
    shared_data: Path, train_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    fast = rep.Scale(
        "tiny",
        (
            "train.steps=2",
            "data.clip_len=4",
            "data.crop=32",
            "train.batch_size=2",
            "data.workers=0",
            "train.warmup_steps=0",
            "train.val_every=1000",
            "train.sample_every=1000",
        ),
        2,
    )
    monkeypatch.setitem(rep.SCALES, "tiny", fast)
    out = tmp_path / "rep"
    data = ["--data", str(train_clips), "--val", str(shared_data / "val")]
    command = ["reproduce", "table1", "--scale", "tiny", "--out", str(out), *data]
    assert main(command) == 0
    result = json.loads((out / "table1.json").read_text())
    assert [r["row"] for r in result["rows"]] == list(rep.PAPER["table1"])
    assert (out / "table1.png").stat().st_size > 1000
    text = (out / "table1.md").read_text()
    assert "0.561" in text and "predictor (trained)" in text
    # the trained run is reused, not trained again
    mtime = (out / "runs" / "predictor-2" / "last.pt").stat().st_mtime
    assert main(command) == 0
    assert (out / "runs" / "predictor-2" / "last.pt").stat().st_mtime == mtime


def test_unknown_table_is_a_usage_error() -> None:
    assert main(["reproduce", "table9"]) == 2
