"""The run folder (run.py): a run started, checkpointed with keep-last, killed and resumed logs
every step once and continues from its newest checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from centrifuge.checkpoint import load_checkpoint
from centrifuge.config import load_config
from centrifuge.errors import OutputExistsError, TrainingError
from centrifuge.models.registry import build_model
from centrifuge.run import RunFolder, training_state

CHECKPOINT_KEYS = {"model_name", "model_kwargs", "model", "optimizer", "step", "config", "rng"}


@pytest.fixture(scope="module")
def model_and_optimizer():
    model = build_model("tiny")
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]


def _checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("*.pt"))


def _train(folder: RunFolder, steps: range, model_and_optimizer, *, save_every: int) -> None:
    """What a training loop does with its run folder, minus the training."""
    config = load_config("tiny")
    for step in steps:
        folder.log(step, {"loss": 1.0 / step})
        if step % save_every == 0:
            state = training_state(*model_and_optimizer, step, config)
            folder.save(state, keep_last=2)


def test_a_resumed_run_continues_its_steps_and_metrics(tmp_path: Path, model_and_optimizer):
    run = tmp_path / "run"
    first = RunFolder(run)
    assert first.prepare(resume=False, force=False) is None
    first.open(0)
    first.write_config(load_config("tiny"))
    _train(first, range(1, 8), model_and_optimizer, save_every=2)  # killed after step 7
    first.close()
    assert _checkpoints(run) == ["step_0000004.pt", "step_0000006.pt"]  # keep-last 2
    assert _steps(run) == list(range(1, 8))

    again = RunFolder(run)
    state = again.prepare(resume=True, force=False)
    assert state["step"] == 6 and set(state) >= CHECKPOINT_KEYS
    again.open(state["step"])  # step 7 was logged after the last checkpoint: it is forgotten
    assert _steps(run) == list(range(1, 7))
    _train(again, range(7, 11), model_and_optimizer, save_every=2)
    again.close()
    assert _steps(run) == list(range(1, 11))
    assert _checkpoints(run) == ["step_0000008.pt", "step_0000010.pt"]
    assert load_checkpoint(again.last)["step"] == 10
    assert torch.load(run / "checkpoints" / "step_0000008.pt", weights_only=True)["step"] == 8


def test_forcing_a_new_run_forgets_the_old_ones_steps_and_checkpoints(
    tmp_path: Path, model_and_optimizer
):
    run = tmp_path / "run"
    old = RunFolder(run)
    old.open(0)
    old.write_config(load_config("tiny"))
    _train(old, range(1, 5), model_and_optimizer, save_every=1)
    old.close()
    with pytest.raises(OutputExistsError, match="--resume"):
        RunFolder(run).prepare(resume=False, force=False)
    new = RunFolder(run)
    assert new.prepare(resume=False, force=True) is None
    new.open(0)
    new.close()
    assert not (run / "metrics.jsonl").read_text() and _checkpoints(run) == []


def test_resuming_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="no run to resume"):
        RunFolder(tmp_path / "nothing").prepare(resume=True, force=False)


def test_a_folder_of_another_rank_writes_nothing(tmp_path: Path, model_and_optimizer) -> None:
    run = tmp_path / "run"
    other = RunFolder(run, main=False)
    other.open(0)
    other.write_config(load_config("tiny"))
    _train(other, range(1, 3), model_and_optimizer, save_every=1)
    other.write_summary({"step": 2})
    assert not run.exists()
    assert other.last_checkpoint_note() == "no checkpoint was written"
