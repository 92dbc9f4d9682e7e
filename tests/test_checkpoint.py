"""Weight files and checkpoints that are wrong (not malicious) fail with one line; resuming a run
takes the newest intact checkpoint (issue 13, points 3 and 13)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from centrifuge.checkpoint import resume_checkpoint, save_checkpoint, write_weights
from centrifuge.cli import main
from centrifuge.errors import ModelError
from centrifuge.models.registry import build_model, model_kwargs
from centrifuge.pretrained import load_model
from conftest import random_frames, write_test_video


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("tiny")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return write_weights(model.state_dict(), path, spec=model.config)


def _rewrite(source: Path, target: Path, *, tensors=None, **meta: str) -> Path:
    """A copy of a safetensors file with some tensors or metadata entries replaced."""
    with safe_open(str(source), framework="pt") as f:
        metadata = {**f.metadata(), **meta}
    save_file({**load_file(str(source)), **(tensors or {})}, str(target), metadata=metadata)
    return target


def _fails_in_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    video = write_test_video(tmp_path / "v.mp4", random_frames(4, 32, 32))
    assert main(["separate", str(video), "-o", str(tmp_path / "out"), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(model) in err[0] and len(err[0]) < 300, err
    assert not (tmp_path / "out" / "v").exists()
    return err[0]


def test_weights_with_wrong_shapes_are_one_line(
    tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    key = next(iter(load_file(str(tiny_weights))))
    bad = _rewrite(tiny_weights, tmp_path / "shapes.safetensors", tensors={key: torch.zeros(3, 2)})
    assert "do not fit" in _fails_in_one_line(bad, tmp_path, capsys)


def test_weights_with_bad_json_metadata_are_one_line(
    tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = _rewrite(tiny_weights, tmp_path / "json.safetensors", model_kwargs="{not json")
    assert "not valid JSON" in _fails_in_one_line(bad, tmp_path, capsys)


@pytest.mark.parametrize(
    "kwargs",
    [
        '{"width": 1000}',  # would allocate about 1.3 TB
        '{"n_outputs": 100000}',
        '{"decoder_channels": [1000000, 8]}',
        '{"final_endpoint": "Logits"}',
        '{"width": "wide"}',
        '{"exec": "import os"}',
        "[1, 2]",
    ],
)
def test_metadata_outside_the_registry_limits_is_refused_before_building(
    kwargs: str, tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = _rewrite(tiny_weights, tmp_path / "limits.safetensors", model_kwargs=kwargs)
    line = _fails_in_one_line(bad, tmp_path, capsys)
    assert "architecture" in line


def test_checkpoint_missing_decoder_channels_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    kwargs = {k: v for k, v in model_kwargs("tiny").items() if k != "decoder_channels"}
    ckpt = {"model_name": "tiny", "model_kwargs": kwargs, "model": build_model("tiny").state_dict()}
    path = save_checkpoint(ckpt, tmp_path / "ckpt.pt")
    assert "do not fit" in _fails_in_one_line(path, tmp_path, capsys)


def test_good_weights_still_load(tiny_weights: Path) -> None:
    state = load_model(tiny_weights).state_dict()
    saved = load_file(str(tiny_weights))
    assert set(state) == set(saved) and all(torch.equal(state[k], saved[k]) for k in saved)


# -- resuming from the newest intact checkpoint (point 13) -------------------------------------


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((2,), float(step))}, "model_kwargs": {}, "step": step}


def _run(tmp_path: Path, steps: tuple[int, ...], last: int | None) -> Path:
    run = tmp_path / "run"
    for step in steps:
        save_checkpoint(_state(step), run / "checkpoints" / f"step_{step:07d}.pt")
    if last is not None:
        save_checkpoint(_state(last), run / "last.pt")
    return run


def test_a_kill_between_step_file_and_last_pt_resumes_from_the_newer_step_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _run(tmp_path, (5, 10), last=5)  # killed while last.pt was being replaced
    partial = run / ".last.pt.k1ll3d.partial"
    partial.write_bytes(b"half a checkpoint")
    with caplog.at_level(logging.WARNING):
        state, path = resume_checkpoint(run)
    assert (state["step"], path.name) == (10, "step_0000010.pt")
    assert "step_0000010.pt" in caplog.text  # says which one it used
    assert not partial.exists()  # the killed write's temporary file is gone


def test_a_truncated_last_pt_falls_back_to_the_newest_intact_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = _run(tmp_path, (5, 10), last=15)
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    broken = run / "checkpoints" / "step_0000010.pt"
    broken.write_bytes(broken.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        state, path = resume_checkpoint(run)
    assert (state["step"], path.name) == (5, "step_0000005.pt")
    assert "last.pt" in caplog.text and "step_0000005.pt" in caplog.text


def test_last_pt_is_used_when_it_is_the_newest(tmp_path: Path) -> None:
    state, path = resume_checkpoint(_run(tmp_path, (5, 10), last=10))
    assert (state["step"], path.name) == (10, "last.pt")


def test_no_intact_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    run = _run(tmp_path, (5,), last=None)
    (run / "checkpoints" / "step_0000005.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="no intact checkpoint"):
        resume_checkpoint(run)
    assert resume_checkpoint(tmp_path / "empty") is None
