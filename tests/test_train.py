"""Training on real clips: the loss falls, resumption is exact, DDP ranks agree, signals and NaNs
stop a run cleanly, checkpoints are plain data."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import centrifuge.losses.objective
from centrifuge.cli import main
from centrifuge.config import apply_overrides, load_config
from centrifuge.errors import ConfigError
from centrifuge.models.registry import build_model
from centrifuge.pretrained import load_model
from centrifuge.train import Trainer

# One torch thread everywhere: exact repeats across processes, and no spinning threads on a busy
# machine.
SMALL = [
    "data.clip_len=8",
    "data.crop=32",
    "train.batch_size=4",
    "data.workers=0",
    "train.threads=1",
    "train.log_every=1",
    "train.lr=0.002",
    "train.sample_every=1000",
]
CHECKPOINT_KEYS = {
    "model_name",
    "model_kwargs",
    "model",
    "optimizer",
    "step",
    "config",
    "rng",
    "versions",
}
TIMEOUT = 120


@pytest.fixture
def keep_threads():
    """In-process training may call ``torch.set_num_threads``: restore the suite's setting."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(train_clips: Path, shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    """20 steps of the tiny model in-process, with validation and checkpoints every 5 steps.
    Plain (not residual) outputs: training starts from a random function, far above the data."""
    threads = torch.get_num_threads()
    config = load_config(
        "tiny",
        [
            *SMALL,
            "train.steps=20",
            "train.seed=0",
            "model.residual=false",
            "train.ckpt_every=5",
            "train.keep_last=2",
            "train.val_every=10",
            "train.val_pairs=2",
            "train.sample_every=20",
        ],
    )
    out = tmp_path_factory.mktemp("tiny") / "run"
    trainer = Trainer(config, data=train_clips, val=shared_data / "val", out=out, device="cpu")
    summary = trainer.fit()
    torch.set_num_threads(threads)
    return trainer, summary


def _losses(run: Path) -> dict[int, float]:
    """Training loss by step from ``metrics.jsonl`` (a later line for a step wins)."""
    losses = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]
    return losses


def _train_command(data: Path, out: Path, *settings: str, resume: bool = False) -> list[str]:
    sets = [arg for s in [*SMALL, *settings] for arg in ("--set", s)]
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        *sets,
        *(["--resume"] if resume else []),
    ]


def _environment() -> dict[str, str]:
    assert "CENTRIFUGE_CACHE" in os.environ  # subprocesses share the suite's private cache
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _spawn(args: list[str], *, torchrun: int = 0, script: Path | None = None) -> subprocess.Popen:
    """``python -m centrifuge ARGS`` (or ``python SCRIPT ARGS``), under torchrun when asked."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    program = [str(script)] if script is not None else ["-m", "centrifuge"]
    command = [sys.executable, *(launcher if torchrun else []), *program, *args]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment()
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{proc.args} did not finish in {TIMEOUT} s")
    return proc.returncode, stdout, stderr


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    """Poll until ``path`` exists; fail if the process ends first or it takes too long."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {path.name} appeared: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear in {TIMEOUT} s")
        time.sleep(0.02)


def test_twenty_steps_lower_the_loss_on_real_clips(tiny_run) -> None:
    trainer, summary = tiny_run
    losses = _losses(trainer.out)
    assert sorted(losses) == list(range(1, 21))
    assert all(math.isfinite(v) for v in losses.values())
    first = sum(losses[s] for s in range(1, 6)) / 5
    last = sum(losses[s] for s in range(16, 21)) / 5
    assert last < 0.7 * first, (first, last)
    assert summary["step"] == 20 and summary["stopped_by"] is None
    assert math.isfinite(summary["val_loss"]) and math.isfinite(summary["val_identity"])
    assert (trainer.out / "samples" / "step_0000020.png").is_file()


def test_resolved_config_in_the_run_folder_loads_back_to_the_same_config(tiny_run) -> None:
    trainer, _ = tiny_run
    assert load_config(trainer.out / "config.yaml") == trainer.config


def test_checkpoints_are_plain_data_and_only_the_last_ones_are_kept(tiny_run) -> None:
    trainer, _ = tiny_run
    kept = sorted(p.name for p in (trainer.out / "checkpoints").glob("*.pt"))
    assert kept == ["step_0000015.pt", "step_0000020.pt"]
    state = torch.load(trainer.out / "last.pt", map_location="cpu", weights_only=True)
    assert set(state) >= CHECKPOINT_KEYS
    assert state["step"] == 20 and state["model_name"] == "tiny"
    assert state["config"] == trainer.config.to_dict()
    step_15 = torch.load(trainer.out / "checkpoints" / "step_0000015.pt", weights_only=True)
    assert step_15["step"] == 15


def test_load_model_from_a_run_gives_the_trainers_model(tiny_run) -> None:
    trainer, _ = tiny_run
    loaded = load_model(trainer.out / "last.pt")
    mixture = torch.rand(1, 3, 8, 32, 32)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(mixture), trainer.model(mixture))


def test_resume_after_sigkill_repeats_the_uninterrupted_losses(
    train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    settings = ["train.steps=12", "train.ckpt_every=3", "train.seed=3", "train.batch_size=2"]
    killed = _spawn(_train_command(train_clips, tmp_path / "killed", *settings))
    _wait_for(tmp_path / "killed" / "last.pt", killed)
    killed.send_signal(signal.SIGKILL)
    assert _finish(killed)[0] == -signal.SIGKILL
    saved_step = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["step"]
    assert 3 <= saved_step < 12

    resumed = _spawn(_train_command(train_clips, tmp_path / "killed", *settings, resume=True))
    assert main(_train_command(train_clips, tmp_path / "whole", *settings)) == 0  # meanwhile
    code, _, stderr = _finish(resumed)
    assert code == 0, stderr
    expected = _losses(tmp_path / "whole")
    assert sorted(expected) == list(range(1, 13))
    assert _losses(tmp_path / "killed") == expected
    logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").open()]
    assert logged == list(range(1, 13))  # what the killed run logged after its checkpoint is gone
    digests = [
        json.loads((tmp_path / run / "summary.json").read_text())["weights_digests"]
        for run in ("whole", "killed")
    ]
    assert digests[0] == digests[1]


# Under torchrun: a plain run, then a run where rank 1's loss becomes NaN at its third step (one
# launch for both, as starting the ranks costs more than training them).
TWO_RUNS = """
import json, math, os, sys
import centrifuge.losses.objective
from centrifuge.cli import main

plain, poisoned_run = json.loads(sys.argv[1]), json.loads(sys.argv[2])
code = main(plain)
pit_loss, calls = centrifuge.losses.objective.pit_loss, []

def poisoned(pred, layers, *args, **kwargs):
    loss, match = pit_loss(pred, layers, *args, **kwargs)
    calls.append(1)
    return (loss * math.nan if len(calls) == 3 else loss), match

if os.environ["RANK"] == "1":
    centrifuge.losses.objective.pit_loss = poisoned
line = json.dumps({"plain": code, "poisoned": main(poisoned_run)}) + "\\n"
os.write(1, line.encode())  # one write: the two ranks share the pipe and finish together
"""


@pytest.fixture(scope="module")
def gloo_runs(train_clips: Path, tmp_path_factory: pytest.TempPathFactory):
    """Two CPU ranks (gloo): ``plain`` trains 3 steps, ``poisoned`` meets a NaN on rank 1."""
    folder = tmp_path_factory.mktemp("gloo")
    (folder / "two_runs.py").write_text(TWO_RUNS)
    settings = ["train.batch_size=2", "train.ckpt_every=1"]
    plain = _train_command(train_clips, folder / "plain", *settings, "train.steps=3")
    poisoned = _train_command(train_clips, folder / "poisoned", *settings, "train.steps=6")
    args = [json.dumps(plain), json.dumps(poisoned)]
    code, stdout, stderr = _finish(_spawn(args, torchrun=2, script=folder / "two_runs.py"))
    assert code == 0, stderr
    print("STDOUT>>>", repr(stdout))
    print("STDERR>>>", stderr[-3000:])
    codes = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    assert codes == [{"plain": 0, "poisoned": 2}] * 2, stdout  # both ranks
    return folder, stderr


def test_two_gloo_ranks_end_with_identical_weights(gloo_runs) -> None:
    folder, _ = gloo_runs
    summary = json.loads((folder / "plain" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 3
    digests = summary["weights_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert summary["ranks_in_sync"] is True


def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(gloo_runs) -> None:
    folder, stderr = gloo_runs
    assert "the loss became nan at step 2" in stderr
    assert "the loss became non-finite on another rank at step 2" in stderr
    state = torch.load(folder / "poisoned" / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_force_starts_afresh_and_forgets_the_old_runs_logs_and_checkpoints(
    train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    run = tmp_path / "run"
    old = load_config("tiny", [*SMALL, "train.steps=4", "train.ckpt_every=1", "train.keep_last=9"])
    Trainer(old, data=train_clips, out=run, device="cpu").fit()
    assert len(list((run / "checkpoints").glob("*.pt"))) == 4
    new = apply_overrides(old, ["train.steps=2", "train.keep_last=0"])
    Trainer(new, data=train_clips, out=run, force=True, device="cpu").fit()
    assert list((run / "checkpoints").glob("*.pt")) == []  # keep_last=0: only last.pt
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()] == [1, 2]
    assert load_config(run / "config.yaml") == new


def test_resume_without_last_pt_continues_from_the_latest_step_checkpoint(
    train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    run = tmp_path / "run"
    config = load_config("tiny", [*SMALL, "train.steps=3", "train.ckpt_every=1"])
    Trainer(config, data=train_clips, out=run, device="cpu").fit()
    (run / "last.pt").unlink()
    resumed = Trainer(config, data=train_clips, out=run, resume=True, device="cpu")
    resumed.run.close()
    assert resumed.step == 3
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 3


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(train_clips: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    settings = ["train.steps=100000", "train.ckpt_every=100000", "train.batch_size=2"]
    proc = _spawn(_train_command(train_clips, run, *settings))
    _wait_for(run / "metrics.jsonl", proc)  # the first step is done: signal handlers are in place
    proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = _finish(proc)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "SIGTERM" in stdout  # the command says why it stopped
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM"
    assert 1 <= summary["step"] < 100000
    assert torch.load(run / "last.pt", weights_only=True)["step"] == summary["step"]


def test_sigint_stops_after_the_current_step_with_a_checkpoint(
    train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    def interrupt(info: dict) -> None:
        if info["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)

    config = load_config("tiny", [*SMALL, "train.steps=50", "train.ckpt_every=1000"])
    trainer = Trainer(
        config, data=train_clips, out=tmp_path / "run", device="cpu", callback=interrupt
    )
    handler = signal.getsignal(signal.SIGINT)
    summary = trainer.fit()
    assert summary["stopped_by"] == "SIGINT" and summary["step"] == 3
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["stopped_by"] == "SIGINT"
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(
    train_clips: Path, tmp_path: Path, monkeypatch, capsys, keep_threads
) -> None:
    calls = []
    pit_loss = centrifuge.losses.objective.pit_loss

    def poisoned(pred, layers, *args, **kwargs):
        loss, match = pit_loss(pred, layers, *args, **kwargs)
        calls.append(1)
        return (loss * math.nan if len(calls) == 6 else loss), match

    monkeypatch.setattr(centrifuge.losses.objective, "pit_loss", poisoned)
    run = tmp_path / "run"
    code = main(_train_command(train_clips, run, "train.steps=10", "train.ckpt_every=2"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "loss became nan at step 5" in err and "last.pt" in err
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_init_starts_a_predictor_corrector_from_a_trained_predictor(
    tiny_run, train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    trainer, _ = tiny_run
    source = trainer.out / "last.pt"
    config = load_config(
        "tiny",
        [
            *SMALL,
            "train.steps=1",
            "model.residual=false",
            "model.corrector=true",
            f"train.init={source}",
        ],
    )
    fine = Trainer(config, data=train_clips, out=tmp_path / "fine", device="cpu")
    trained = trainer.model.state_dict()
    own = fine.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in trained.items())
    assert any(k.startswith("corrector.") for k in own)


def test_init_from_weights_of_another_architecture_is_a_config_error(
    tiny_run, train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    trainer, _ = tiny_run
    config = load_config(
        "tiny", [*SMALL, "model.width=0.5", f"train.init={trainer.out / 'last.pt'}"]
    )
    with pytest.raises(ConfigError, match="does not fit"):
        Trainer(config, data=train_clips, out=tmp_path / "other", device="cpu")


def test_a_residual_predictor_corrector_starts_at_the_identity_baseline() -> None:
    torch.manual_seed(0)
    model = build_model("tiny", residual=True, corrector=True).eval()
    mixture = torch.rand(1, 3, 8, 32, 32)
    with torch.no_grad():
        out = model(mixture)
    assert torch.allclose(out, mixture.unsqueeze(1).expand_as(out))


def test_resume_says_which_settings_it_ignores(
    tiny_run, train_clips: Path, tmp_path: Path, keep_threads, caplog
) -> None:
    trainer, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(trainer.out, run)
    args = _train_command(train_clips, run, "train.steps=20", "train.lr=0.5", resume=True)
    with caplog.at_level("WARNING", logger="centrifuge"):
        assert main(args) == 0
    assert "ignoring --set" in caplog.text and "train.lr=0.5" in caplog.text
    assert "train.steps=20" not in caplog.text


def test_processes_on_one_cpu_machine_share_its_threads(
    train_clips: Path, tmp_path: Path, keep_threads, monkeypatch
) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it for 2 processes
    config = load_config("tiny", [*SMALL, "train.threads=2", "train.steps=1"])
    Trainer(config, data=train_clips, out=tmp_path / "run", device="cpu")
    assert torch.get_num_threads() == 1


def test_resume_takes_the_newest_intact_checkpoint_after_a_kill_mid_write(
    train_clips: Path, tmp_path: Path, keep_threads
) -> None:
    """A kill while ``last.pt`` was replaced leaves it a step behind ``checkpoints/`` and a
    temporary file: resuming continues from the newer step file and removes the temporary."""
    run = tmp_path / "run"
    config = load_config("tiny", [*SMALL, "train.steps=2", "train.ckpt_every=1"])
    Trainer(config, data=train_clips, out=run, device="cpu").fit()
    shutil.copy(run / "checkpoints" / "step_0000001.pt", run / "last.pt")  # the old last.pt
    partial = run / ".last.pt.x1y2z3.partial"
    partial.write_bytes(b"cut short")
    resumed = Trainer(config, data=train_clips, out=run, resume=True, device="cpu")
    resumed.run.close()
    assert resumed.step == 2 and not partial.exists()
