"""The command line as a newcomer meets it: instant help, conventional flags, visible progress."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import torch

import centrifuge.cli
import centrifuge.cli.common
import centrifuge.pretrained
from centrifuge.cli import build_parser, main
from conftest import random_frames, write_test_video

SRC = Path(centrifuge.cli.__file__).resolve().parents[2]

CHILD = """
import json, sys
from centrifuge.cli import main
code = main(json.loads(sys.argv[1]))
heavy = sorted(m for m in ("torch", "numpy", "centrifuge.inference") if m in sys.modules)
print(json.dumps([code, heavy]), file=sys.stderr)
"""


def _fresh_process(argv: list[str]) -> tuple[int, list[str], str]:
    """Run ``main(argv)`` in a new interpreter: its exit code, the heavy modules it imported and
    what it printed."""
    run = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(argv)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    *printed, last = run.stderr.strip().splitlines()
    code, heavy = json.loads(last)
    return code, heavy, run.stdout + "\n".join(printed)


def test_importing_the_cli_does_not_import_torch() -> None:
    code = "import sys, centrifuge.cli; print('torch' in sys.modules, 'numpy' in sys.modules)"
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        timeout=120,
    )
    assert run.stdout.split() == ["False", "False"], run.stderr


@pytest.mark.parametrize(
    "argv, expected_code, expected_text",
    [
        (["--help"], 0, "separate"),
        (["--version"], 0, f"centrifuge {centrifuge.__version__}"),
        (["separate", "missing.mp4"], 2, "missing.mp4: no such file or folder."),
        (["separate", "--help"], 0, "report.json"),
        ([], 2, "centrifuge --help"),
    ],
)
def test_help_version_and_input_checks_answer_without_importing_torch(
    argv: list[str], expected_code: int, expected_text: str
) -> None:
    code, heavy, printed = _fresh_process(argv)
    assert code == expected_code
    assert expected_text in printed
    assert heavy == []


def test_bare_command_prints_usage_and_a_hint(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: centrifuge")
    assert "centrifuge demo" in err and "centrifuge separate clip.mp4" in err


def _subcommand(name: str) -> object:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("name", ["separate", "evaluate", "demo", "train", "reproduce", "blend"])
def test_help_shows_the_default_of_every_option_that_has_one(name: str) -> None:
    parser = _subcommand(name)
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, [], "==SUPPRESS=="):
            assert f"(default: {action.default})" in text, (name, action.dest)


def test_separate_help_says_what_files_come_out() -> None:
    text = _subcommand("separate").format_help()
    for name in ("layer_1.mp4", "preview.mp4", "contact.png", "report.json", "layer_1.png"):
        assert name in text


@pytest.mark.parametrize(
    "argv",
    [
        ["separate", "clip.mp4"],
        ["evaluate", "--data", "videos"],
        ["demo"],
    ],
)
def test_short_and_long_model_and_device_flags_mean_the_same(argv: list[str]) -> None:
    parser = build_parser()
    short = parser.parse_args([*argv, "-n", "tiny", "-d", "cpu"])
    long = parser.parse_args([*argv, "--model", "tiny", "--device", "cpu"])
    default = parser.parse_args(argv)
    assert (short.model, short.device) == (long.model, long.device) == ("tiny", "cpu")
    assert (default.model, default.device) == ("small", "auto")


def test_size_means_the_short_side_everywhere() -> None:
    parser = build_parser()
    assert parser.parse_args(["separate", "a.mp4", "--size", "224"]).size == 224
    assert parser.parse_args(["separate", "a.mp4"]).size == "auto"  # half size, residual models
    assert parser.parse_args(["separate", "a.mp4", "--size", "native"]).size is None
    assert parser.parse_args(["evaluate", "--data", "d", "--size", "96"]).size == 96
    for name in ("separate", "evaluate", "blend"):
        assert "short side" in _subcommand(name).format_help()


class _Half(torch.nn.Module):
    n_outputs = 2
    stride = (8, 32, 32)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return torch.stack([0.5 * mixture, 0.5 * mixture + 0.1], dim=1)


class _RecordingBar:
    """Stands in for tqdm: records what a bar was asked to show."""

    made: ClassVar[list[_RecordingBar]] = []

    def __init__(self, total: int | None, unit: str, desc: str, **kwargs) -> None:
        self.total, self.desc, self.n, self.closed = total, desc, 0, False
        self.postfix: list[str] = []
        _RecordingBar.made.append(self)

    def update(self, n: int) -> None:
        self.n += n

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix.append(text)

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_separate_shows_a_status_then_exactly_one_bar_per_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(centrifuge.pretrained, "load_model", lambda *a, **k: _Half())
    monkeypatch.setattr(centrifuge.cli.common, "progress_bar", _RecordingBar)
    monkeypatch.setattr(_RecordingBar, "made", [])
    monkeypatch.setenv("CENTRIFUGE_PROGRESS", "1")
    a = write_test_video(tmp_path / "a.mp4", random_frames(20, 32, 32, seed=1))
    b = write_test_video(tmp_path / "b.mp4", random_frames(9, 32, 32, seed=2))
    argv = ["separate", str(a), str(b), "-o", str(tmp_path / "out"), "--clip-len", "8"]
    assert main([*argv, "--overlap", "2"]) == 0
    assert "loading the model 'small'" in capsys.readouterr().err  # shown before the imports
    bars = _RecordingBar.made
    assert [(bar.desc, bar.total, bar.n) for bar in bars] == [("a.mp4", 20, 20), ("b.mp4", 9, 9)]
    assert all(bar.closed for bar in bars)
    assert bars[0].postfix[0] == "decoding, first window"  # before the first window is done
    assert "writing contact sheet" in bars[0].postfix
