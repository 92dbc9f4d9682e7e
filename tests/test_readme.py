"""The README's commands, as a newcomer types them: every one parses, the cheap ones run.

Commands are read from the README's ``bash`` code blocks (``centrifuge ...`` lines and ``torchrun
... -m centrifuge ...`` lines). Inputs the README names as placeholders (``my_video.mp4``,
``my_photo.jpg``, ``path/to/videos/``, ``demo_out/mixture.mp4``) are generated as tiny files in a
temporary folder, and the commands that finish in seconds run there, in order, with the bundled
model. Training, evaluation and reproduction need the user's data: they are only parsed.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import centrifuge.models.summary
import centrifuge.pretrained
from centrifuge.cli import build_parser, main
from centrifuge.video.read import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from conftest import random_frames, write_test_video

README = Path(__file__).resolve().parents[1] / "README.md"
RUN = {"--help", "--version", "separate", "blend", "models"}  # seconds on a tiny input


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _commands() -> list[list[str]]:
    """Arguments of every ``centrifuge`` command in the README's bash blocks, in order."""
    commands = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["centrifuge"]:
                commands.append(words[1:])
            elif words[:1] == ["torchrun"]:
                commands.append(words[words.index("centrifuge") + 1 :])
    return commands


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    first = _blocks("bash")[0].splitlines()
    assert [line.split()[:2] for line in first] == [["make", "demo"], ["make", "test"]]


def test_the_readme_activates_the_environment_before_calling_centrifuge() -> None:
    text = README.read_text()
    assert ". .venv/bin/activate" in text
    assert text.index(". .venv/bin/activate") < text.index("\ncentrifuge ")


def test_the_readme_names_no_folder_an_outside_user_does_not_have() -> None:
    assert "shared/data" not in "".join(_blocks("bash"))


@pytest.mark.parametrize("argv", _commands(), ids=" ".join)
def test_every_readme_command_parses(argv: list[str]) -> None:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version end here
        assert exc.code == 0, argv
        return
    assert args.command is not None


def _make_inputs(argv: list[str], folder: Path) -> None:
    """Generate the files a command names that do not exist yet (tiny videos and images)."""
    for seed, word in enumerate(argv):
        path = folder / word
        if word.startswith("-") or path.exists():
            continue
        if word.endswith("/") and "/" in word[:-1]:  # a folder of the user's videos
            path.mkdir(parents=True)
            write_test_video(path / "a.mp4", random_frames(6, 32, 48, seed=seed))
        elif path.suffix.lower() in VIDEO_EXTENSIONS and argv[argv.index(word) - 1] != "-o":
            path.parent.mkdir(parents=True, exist_ok=True)
            write_test_video(path, random_frames(6, 32, 48, seed=seed))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            image = (random_frames(1, 36, 52, seed=seed)[:, 0] * 255).byte().permute(1, 2, 0)
            Image.fromarray(np.ascontiguousarray(image.numpy())).save(path)


def test_the_cheap_readme_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # counting FLOPs traces every model (seconds each; `centrifuge models` caches the counts)
    monkeypatch.setattr(centrifuge.models.summary, "_cached_flops", lambda name, clip: 10**9)
    # the bundled model is read once, not once per command
    monkeypatch.setattr(
        centrifuge.pretrained, "load_model", functools.lru_cache(centrifuge.pretrained.load_model)
    )
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in _commands():
        if argv[0] not in RUN:
            continue
        _make_inputs(argv, tmp_path)
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        ran.append(argv[0])
    assert {"--help", "--version", "separate", "blend", "models"} <= set(ran)
    assert (tmp_path / "separated" / "my_photo" / "layer_1.png").exists()
    assert (tmp_path / "try" / "mixture" / "layer_1.mp4").exists()
    assert (tmp_path / "mix.mp4").exists()


def test_the_readme_python_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (code,) = [block for block in _blocks("python") if block.startswith("import centrifuge")]
    monkeypatch.chdir(tmp_path)
    write_test_video(tmp_path / "my_video.mp4", random_frames(6, 32, 48))
    exec(compile(code, str(README), "exec"), {})
    assert (tmp_path / "layer.mp4").exists()
