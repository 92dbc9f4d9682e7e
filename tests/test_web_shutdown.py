"""``centrifuge serve`` under interruptions (issue 24): a client that disconnects mid-upload gets
one log line and leaves nothing; stopping the server while a job runs ends the job at its next
window, marks it failed and leaves no work folder, lock or result behind."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("starlette", reason="the web extra is not installed")

from centrifuge.pretrained import load_model
from centrifuge.web.app import create_app
from centrifuge.web.jobs import STOPPED, Limits
from conftest import random_frames, write_test_video

try:
    from starlette.testclient import TestClient
except RuntimeError as exc:  # neither httpx2 nor httpx
    pytest.skip(f"starlette's test client cannot run: {exc}", allow_module_level=True)


def _post_and_disconnect(app, first_chunk: bytes) -> list[dict]:
    """Drive the ASGI app by hand: the client sends one chunk of a larger body, then goes."""
    messages = [{"type": "http.request", "body": first_chunk, "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/jobs",
        "raw_path": b"/api/jobs",
        "root_path": "",
        "query_string": b"name=clip.mp4&size=native",
        "headers": [(b"content-length", b"1000000")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7860),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_a_client_gone_mid_upload_costs_one_log_line_and_leaves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        tmp_path / "out", model="tiny", device="cpu", load_model=lambda name: load_model("tiny")
    )
    with caplog.at_level(logging.WARNING):
        _post_and_disconnect(app, b"\0" * 1000)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and "cut off by the client" in records[0].getMessage()
    assert records[0].exc_info is None  # no traceback
    assert list((tmp_path / "out" / ".web").iterdir()) == []  # the partial upload is gone


class BlockingModel(torch.nn.Module):
    """The tiny model, held inside its first forward pass until ``release`` is set (the events
    are class attributes: the separator works on a deep copy of the model)."""

    entered, release = threading.Event(), threading.Event()

    def __init__(self) -> None:
        super().__init__()
        self.inner = load_model("tiny")
        self.n_outputs, self.stride = self.inner.n_outputs, self.inner.stride

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.entered.set()
        assert self.release.wait(timeout=120)
        return self.inner(mixture)


def test_stopping_the_server_mid_job_fails_the_job_and_cleans_up(tmp_path: Path) -> None:
    model = BlockingModel()
    out = tmp_path / "out"
    app = create_app(
        out, model="tiny", device="cpu", limits=Limits(), load_model=lambda name: model
    )
    clip = write_test_video(tmp_path / "clip.mp4", random_frames(40, 32, 48), 8, lossless=False)
    with TestClient(app) as client:
        params = {"name": "clip.mp4", "size": "native"}
        job = client.post("/api/jobs", params=params, content=clip.read_bytes()).json()
        assert model.entered.wait(timeout=120)  # the job is inside the model
        queue = app.state.queue
        stopper = threading.Thread(target=queue.stop)
        stopper.start()  # as the server's shutdown does
        model.release.set()
        stopper.join(timeout=120)
        assert not stopper.is_alive() and queue.running is None
        state = client.get(f"/api/jobs/{job['id']}").json()
    assert (state["state"], state["error"]) == ("failed", STOPPED)
    leftovers = [p.name for p in out.iterdir() if p.name != ".web"]
    assert leftovers == []  # no result, no work folder, no lock


def test_serve_without_the_web_packages_names_a_command_that_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import sys

    from centrifuge.cli import main

    monkeypatch.setitem(sys.modules, "centrifuge.web.app", None)  # as if starlette were missing
    assert main(["serve", "--port", "0"]) == 2
    line = capsys.readouterr().err.strip()
    assert "pip install 'starlette>=0.40' 'uvicorn>=0.30'" in line and "[web]" not in line
