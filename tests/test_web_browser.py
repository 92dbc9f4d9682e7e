"""``centrifuge serve`` end to end in a real headless browser (Chromium driven by Playwright).

The browser is the system's (Debian's ``chromium-headless-shell``, or ``$CENTRIFUGE_BROWSER``):
Playwright's own browser download cannot work offline. ``make test`` installs it where it can.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install -e '.[web]'")
pytest.importorskip("uvicorn", reason="the web extra is not installed: pip install -e '.[web]'")
pytest.importorskip("playwright", reason="playwright is not installed: pip install playwright")

import uvicorn
from playwright.sync_api import sync_playwright

from centrifuge.pretrained import load_model
from centrifuge.web.app import create_app, listen
from centrifuge.web.jobs import Limits
from conftest import random_frames, write_test_video

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
BROWSER_ARGS = [
    "--no-sandbox",  # tests may run as root in a container
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEADLINE_MS = 180_000  # a job on a busy 2-core machine


def _browser() -> str:
    found = os.environ.get("CENTRIFUGE_BROWSER") or next(
        filter(None, map(shutil.which, BROWSERS)), None
    )
    if not found:
        pytest.skip(
            "no system Chromium (apt-get install chromium-headless-shell, or set "
            "CENTRIFUGE_BROWSER): Playwright's own browser download needs the network"
        )
    return found


@pytest.fixture
def server(tmp_path: Path):
    """The app on a free port of 127.0.0.1, served by uvicorn in a thread."""
    app = create_app(
        tmp_path / "out",
        model="tiny",
        device="cpu",
        backend="torch",
        limits=Limits(max_bytes=5_000_000, max_seconds=30),
        load_model=lambda name: load_model("tiny"),
    )
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


IN_SYNC = """() => {
  const vs = [...document.querySelectorAll('#players video')];
  if (vs.length < 3) return false;
  const ts = vs.map((v) => v.currentTime);
  return vs.every((v) => !v.paused && v.readyState >= 2 && v.videoWidth > 0)
    && Math.min(...ts) > 0.3 && Math.max(...ts) - Math.min(...ts) < 0.3;
}"""


def test_page_uploads_a_clip_and_plays_the_layers_in_sync(server: str, tmp_path: Path) -> None:
    executable = _browser()
    clip = write_test_video(
        tmp_path / "walk.mp4", random_frames(24, 48, 64), fps=8, lossless=False
    )  # 3 s at 8 fps: time to see the players run together
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.goto(server)
            page.wait_for_selector("#model option", state="attached")  # /api/info arrived
            assert "untrained" in page.inner_text("#note")
            page.set_input_files("#file", str(clip))
            page.select_option("#size", "native")
            page.click("#go")
            page.wait_for_url("**/jobs/*")
            page.wait_for_selector("#result:not([hidden])", timeout=DEADLINE_MS)
            job_url = page.url
            assert page.inner_text("#status-text") == "done: 24 frames"
            links = page.eval_on_selector_all("#downloads a", "as => as.map(a => a.textContent)")
            names = ["layer_1.mp4", "layer_2.mp4", "preview.mp4", "contact.png", "report.json"]
            assert links[:5] == names
            page.click("#play")  # one button plays the input and both layers
            page.wait_for_function(IN_SYNC, timeout=30_000)
            page.click("#play")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#players video')].every(v => v.paused)"
            )
            # the job's URL survives a reload
            page.reload()
            page.wait_for_selector("#result:not([hidden])", timeout=30_000)
            assert page.url == job_url
            page.wait_for_function(  # the contact sheet loads (it may still be loading here)
                "() => { const i = document.querySelector('#contact');"
                " return i.complete && i.naturalWidth > 0; }",
                timeout=30_000,
            )
            # a bad file: the one-line message on the page, and the page still works
            bad = tmp_path / "notes.txt"
            bad.write_text("not a video")
            page.set_input_files("#file", str(bad))
            page.click("#go")
            page.wait_for_selector("#error:not([hidden])")
            assert page.inner_text("#error") == (
                "error: notes.txt: not a readable video or image (corrupt or unknown format)."
            )
        finally:
            browser.close()
