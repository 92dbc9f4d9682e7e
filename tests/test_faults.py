"""Faults while ``separate`` publishes its results (issue 13, points 8 to 10): a kill -9 at every
publishing step, concurrent runs into one folder, a full disk and a read-only folder. After any of
them a result folder is complete or absent, and the next run needs no cleaning by hand."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import torch

import centrifuge.inference.files
import centrifuge.inference.preview
import centrifuge.pretrained
import centrifuge.video.write
from centrifuge.cli import main
from centrifuge.models.registry import build_model
from centrifuge.video.read import probe_video, read_video
from conftest import random_frames, write_test_video

FINAL = {"layer_1.mp4", "layer_2.mp4", "preview.mp4", "contact.png", "report.json"}


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture
def use_tiny(tiny: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(centrifuge.pretrained, "load_model", lambda *args, **kwargs: tiny)


def _complete(folder: Path, source: Path) -> dict:
    """The five result files, each whole, made from ``source``; returns the report."""
    assert {p.name for p in folder.iterdir()} == FINAL
    report = json.loads((folder / "report.json").read_text())
    assert report["input"] == str(source)
    frames = probe_video(source).frames
    for name in ("layer_1.mp4", "layer_2.mp4", "preview.mp4"):
        assert read_video(folder / name)[0].shape[1] == frames, name
    layer = probe_video(folder / "layer_1.mp4")
    assert (layer.width, layer.height) == (report["width"], report["height"])
    return report


def _in_fork(run, kill_at: int = 0) -> tuple[int, int]:
    """Run ``run()`` in a forked process that kills itself with SIGKILL just before its
    ``kill_at``-th publishing step (0: never). Returns ``(steps seen, status)``: the exit code, or
    minus the signal."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: count publishing steps, die at one of them
        os.close(read)
        torch.set_num_threads(1)
        count = [0]

        def step(original):
            def hooked(*args, **kwargs):
                count[0] += 1
                os.write(write, b".")
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)

            return hooked

        for owner, name in [
            (centrifuge.video.write.VideoWriter, "close"),  # each layer, then the preview
            # the layers are in the work folder
            (centrifuge.inference.preview.PreviewWriter, "close"),
            (centrifuge.inference.files, "write_contact_sheet"),
            (centrifuge.inference.files, "write_report"),  # report.json
            (os, "rename"),  # the earlier result out, the new one in
            (shutil, "rmtree"),  # clean-up
        ]:
            setattr(owner, name, step(getattr(owner, name)))
        code = 1
        try:
            with redirect_stderr(io.StringIO()):
                code = run()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        steps = len(pipe.read())
    _, status = os.waitpid(pid, 0)
    return steps, (-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


@pytest.mark.parametrize("force", [False, True], ids=["fresh", "replacing"])
def test_kill_9_at_every_publishing_step_leaves_a_complete_result_or_none(
    force: bool, tmp_path: Path, use_tiny
) -> None:
    source = write_test_video(tmp_path / "clip.mp4", random_frames(6, 32, 32))
    out, folder = tmp_path / "out", tmp_path / "out" / "clip"
    args = ["separate", str(source), "-o", str(out), "--clip-len", "8", "--overlap", "2"]
    if force:
        assert main(args) == 0

    def run() -> int:
        return main([*args, "--force"])

    steps, status = _in_fork(run)
    assert status == 0 and steps >= 8
    kept = replaced = absent = 0
    for kill_at in range(1, steps + 1):
        if force:  # start each round from a result and no leftovers (steps counted alike)
            if not folder.exists():
                assert main(args) == 0
            for left in out.glob(".*"):
                shutil.rmtree(left) if left.is_dir() else left.unlink()
        old = {p.name: p.read_bytes() for p in folder.iterdir()} if force else None
        _, status = _in_fork(run, kill_at)
        assert status == -signal.SIGKILL, kill_at
        outside = [p for p in out.iterdir() if p != folder]
        assert all(p.name.startswith(".") for p in outside), outside  # hidden work only
        if not folder.exists():
            absent += 1
        elif force and {p.name: p.read_bytes() for p in folder.iterdir()} == old:
            kept += 1
        else:
            _complete(folder, source)
            replaced += 1
        if not force:  # leftovers are no result to protect: the next run cleans them
            assert main(args + (["--force"] if folder.exists() else [])) == 0
            _complete(folder, source)
            assert sorted(out.iterdir()) == [folder]
            shutil.rmtree(folder)
    assert absent >= 1 and (not force or (kept >= 1 and replaced >= 1))


def test_concurrent_runs_into_one_folder_never_mix_their_results(tmp_path: Path, use_tiny) -> None:
    """Two inputs with the same name, separated at once into the same -o (with and without
    --force): each run succeeds or is refused in one line, and the result is one input's."""
    sources = []
    for i, (h, w) in enumerate([(32, 32), (48, 64)]):
        (tmp_path / f"d{i}").mkdir()
        sources.append(write_test_video(tmp_path / f"d{i}" / "clip.mp4", random_frames(6, h, w)))
    out = tmp_path / "out"
    for extra in ([], ["--force"], ["--force"]):
        read_fds, pids = [], []
        for source in sources:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                torch.set_num_threads(1)
                err = io.StringIO()
                code = 1
                try:
                    with redirect_stderr(err):
                        code = main(["separate", str(source), "-o", str(out), *extra])
                finally:
                    os.write(w, err.getvalue().encode())
                    os._exit(code)
            os.close(w)
            read_fds.append(r)
            pids.append(pid)
        results = []
        for r, pid in zip(read_fds, pids):
            with os.fdopen(r) as pipe:
                err = pipe.read()
            results.append((os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err))
        assert all(code in (0, 2) for code, _ in results), results
        for code, err in results:
            if code == 2:
                lines = err.strip().splitlines()
                assert len(lines) == 1 and ("in use" in lines[0] or "exists" in lines[0]), err
        report = _complete(
            out / "clip", Path(json.loads((out / "clip" / "report.json").read_text())["input"])
        )
        assert report["input"] in map(str, sources)
        assert sorted(out.iterdir()) == [out / "clip"]


# -- a full disk and a read-only folder, on small file systems of their own -------------------

CHILD = """
import io, json, sys
from contextlib import redirect_stderr
from pathlib import Path
import torch
import centrifuge.pretrained
from centrifuge.cli import main
from centrifuge.models.registry import build_model

torch.manual_seed(0)
torch.set_num_threads(1)
model = build_model("tiny").eval()
centrifuge.pretrained.load_model = lambda *args, **kwargs: model
results = []
for out in sys.argv[2:]:
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["separate", sys.argv[1], "-o", out + "/results", "--clip-len", "16"])
    left = sorted(str(p.relative_to(out)) for p in Path(out).rglob("*"))
    results.append({"out": out, "code": code, "err": err.getvalue(), "left": left})
print(json.dumps(results))
"""


def _mounted(tmp_path: Path, mounts: dict[str, str], source: Path) -> list[dict]:
    """Run CHILD in a private mount namespace with a tmpfs (``options``) at each folder."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount small file systems")
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    (tmp_path / "child.py").write_text(CHILD)
    script = []
    for name, options in mounts.items():
        (tmp_path / name).mkdir()
        script.append(f"mount -t tmpfs -o {options} tmpfs {tmp_path / name}")
    folders = " ".join(str(tmp_path / name) for name in mounts)
    script.append(f'exec "{sys.executable}" {tmp_path / "child.py"} {source} {folders}')
    proc = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", " && ".join(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0 and "mount" in proc.stderr and not proc.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_full_disk_and_read_only_folder_are_one_line_with_nothing_left(tmp_path: Path) -> None:
    noise = torch.rand(3, 48, 96, 128)  # incompressible: the layers alone need about 1 MB
    source = write_test_video(tmp_path / "noise.mp4", noise, lossless=False)
    mounts = {"full40k": "size=40k", "full400k": "size=400k", "readonly": "ro,size=1m"}
    results = _mounted(tmp_path, mounts, source)
    for result in results:
        lines = result["err"].strip().splitlines()
        assert result["code"] == 2, result
        assert len(lines) == 1 and "Traceback" not in lines[0], result
        assert f"{result['out']}/results" in lines[0], result
        cause = "Read-only file system" if "readonly" in result["out"] else "No space left"
        assert cause in lines[0], result
        assert result["left"] in ([], ["results"]), result  # no partial or hidden file
