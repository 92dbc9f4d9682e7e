"""``centrifuge serve``: the web app's routes through a test client (tiny untrained model, CPU)."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install -e '.[web]'")


from centrifuge.cli import main
from centrifuge.inference.results import output_paths
from centrifuge.pretrained import load_model
from centrifuge.video.read import probe_video
from centrifuge.web.app import create_app
from centrifuge.web.jobs import Limits
from conftest import random_frames, write_test_video

try:
    from starlette.testclient import TestClient
except RuntimeError as exc:  # neither httpx2 nor httpx
    pytest.skip(f"starlette's test client cannot run: {exc}", allow_module_level=True)

DEADLINE = 120.0  # seconds a job may take on a busy 2-core machine


def _tiny(name: str):
    return load_model("tiny")


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """An 8-frame 32x48 H.264 clip (1 s at 8 fps)."""
    return write_test_video(tmp_path / "clip.mp4", random_frames(8, 32, 48), fps=8, lossless=False)


def _app(out: Path, **kwargs):
    kwargs.setdefault("limits", Limits(max_bytes=2_000_000, max_seconds=30))
    kwargs.setdefault("load_model", _tiny)
    return create_app(out, model="tiny", device="cpu", backend="torch", **kwargs)


@pytest.fixture
def client(tmp_path: Path):
    with TestClient(_app(tmp_path / "out")) as c:
        yield c


def _upload(client: TestClient, path: Path, name: str | None = None, **options):
    params = {"name": name or path.name, "size": "native", **options}
    return client.post("/api/jobs", params=params, content=path.read_bytes())


def _wait(client: TestClient, job_id: str, states=("done", "failed")) -> dict:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['state']} after {DEADLINE} s")


def test_upload_separates_into_the_layout_of_separate_and_serves_the_files(
    client: TestClient, clip: Path, tmp_path: Path
) -> None:
    res = _upload(client, clip)
    assert res.status_code == 201, res.text
    job = res.json()
    assert len(job["id"]) == 32 and job["state"] in ("queued", "running")
    done = _wait(client, job["id"])
    assert done["state"] == "done", done["error"]
    assert done["frames_done"] == done["frames_total"] == 8
    folder = f"clip-{job['id'][:8]}"
    paths = output_paths(tmp_path / "out", f"{folder}.mp4", 2)
    for path in [*paths["layers"], paths["preview"], paths["contact"], paths["report"]]:
        assert path.is_file(), path
    assert done["files"] == [
        "layer_1.mp4",
        "layer_2.mp4",
        "preview.mp4",
        "contact.png",
        "report.json",
    ]
    report = client.get(f"/api/jobs/{job['id']}/files/report.json")
    assert report.status_code == 200
    assert report.json() == json.loads(paths["report"].read_text())
    layer = client.get(f"/api/jobs/{job['id']}/files/layer_1.mp4")
    assert layer.content == paths["layers"][0].read_bytes()
    assert probe_video(paths["layers"][0]).frames == 8
    part = client.get(f"/api/jobs/{job['id']}/files/preview.mp4", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and len(part.content) == 10  # seekable in a <video>
    assert client.get(f"/api/jobs/{job['id']}/input").content == clip.read_bytes()
    # the job's URL is the page, and the job is still there when fetched again by its id
    page = client.get(f"/jobs/{job['id']}")
    assert page.status_code == 200 and "app.js" in page.text
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "done"
    # the same file again never overwrites the first results
    second = _wait(client, _upload(client, clip).json()["id"])
    assert second["state"] == "done" and second["id"] != job["id"]
    assert paths["layers"][0].read_bytes() == layer.content
    assert (tmp_path / "out" / f"clip-{second['id'][:8]}" / "layer_1.mp4").is_file()


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_bad_uploads_get_the_clis_one_line_and_the_server_keeps_serving(
    client: TestClient, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.txt").write_text("not a video\n" * 20)
    (bad / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "video.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)  # a name that lies
    monkeypatch.chdir(bad)
    for path in sorted(bad.iterdir()):
        res = _upload(client, path)
        assert res.status_code == 400, path
        error = res.json()["error"]
        assert "\n" not in error and error.startswith(f"{path.name}: ")
        assert main(["separate", path.name, "-o", str(tmp_path / "cli"), "--model", "tiny"]) == 2
        assert capsys.readouterr().err.strip().endswith(f"error: {error}")  # the CLI's sentence
    for side in (10_000, 100_000):  # over the server's limit; over Pillow's bomb limit too
        huge = bad / f"huge{side}.png"
        huge.write_bytes(_png_header(side, side))
        res = _upload(client, huge)
        assert res.status_code == 400 and res.json()["error"].startswith(f"{huge.name}: ")
        assert "megapixels" in res.json()["error"]
    assert client.get("/api/info").status_code == 200
    assert not any((tmp_path / "out" / ".web").iterdir())  # nothing kept of refused uploads


def test_too_large_and_too_long_uploads_are_refused(tmp_path: Path, clip: Path) -> None:
    limits = Limits(max_bytes=clip.stat().st_size - 1, max_seconds=30)
    with TestClient(_app(tmp_path / "out", limits=limits)) as client:
        res = _upload(client, clip)  # Content-Length says too much: refused before reading
        assert res.status_code == 413 and "MB" in res.json()["error"]
        chunks = iter([clip.read_bytes()[:100], clip.read_bytes()[100:]])
        res = client.post("/api/jobs", params={"name": "clip.mp4"}, content=chunks)  # streamed
        assert res.status_code == 413
    with TestClient(_app(tmp_path / "out", limits=Limits(max_seconds=0.5))) as client:
        res = _upload(client, clip)
        assert res.status_code == 400 and res.json()["error"].endswith(
            "1.0 s long, more than this server accepts (0.5 s)."
        )
    assert not any((tmp_path / "out" / ".web").iterdir())


def test_urls_reach_only_files_of_finished_jobs(client: TestClient, clip: Path) -> None:
    job = _wait(client, _upload(client, clip).json()["id"])
    base = f"/api/jobs/{job['id']}"
    for url in [
        f"{base}/files/job.json",  # beside the upload, not a result
        f"{base}/files/clip.mp4",
        f"{base}/files/..%2F..%2F..%2Fpyproject.toml",
        f"{base}/files/%2e%2e",
        f"/api/jobs/{'0' * 32}/files/report.json",
        "/api/jobs/..%2F.web/files/report.json",
        "/static/..%2F..%2Fcli.py",
        "/static/../app.py",
    ]:
        assert client.get(url).status_code == 404, url
    assert client.get("/api/jobs/not-an-id").status_code == 404
    for params in ({"model": "../weights/small.safetensors"}, {"size": "7"}, {"layers": "3"}):
        res = _upload(client, clip, **params)
        assert res.status_code == 400 and res.json()["error"].endswith(".")


def test_jobs_wait_their_turn_and_show_their_place_in_the_queue(tmp_path: Path, clip: Path) -> None:
    release = threading.Event()

    def slow_model(name: str):
        assert release.wait(DEADLINE)
        return load_model("tiny")

    with TestClient(_app(tmp_path / "out", load_model=slow_model)) as client:
        first = _upload(client, clip).json()["id"]
        _wait(client, first, states=("running",))
        second = _upload(client, clip).json()["id"]
        third = _upload(client, clip).json()["id"]
        assert client.get(f"/api/jobs/{second}").json()["ahead"] == 1
        assert client.get(f"/api/jobs/{third}").json()["ahead"] == 2
        assert client.get(f"/api/jobs/{first}/input").status_code == 404  # not finished yet
        assert client.get(f"/api/jobs/{first}/files/report.json").status_code == 404
        release.set()
        assert _wait(client, third)["state"] == "done"
        assert client.get(f"/api/jobs/{first}").json()["state"] == "done"
    # a new server on the same folder still has the finished jobs
    with TestClient(_app(tmp_path / "out")) as client:
        job = client.get(f"/api/jobs/{second}").json()
        assert job["state"] == "done"
        assert client.get(f"/api/jobs/{second}/files/contact.png").status_code == 200


def test_serve_reports_a_busy_port_in_one_line(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--model", "tiny", "--port", str(port), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"centrifuge serve: error: cannot listen on 127.0.0.1:{port}")
    assert "\n" not in err


def test_a_still_is_recognised_by_its_content_whatever_its_name(
    client: TestClient, tmp_path: Path
) -> None:
    from PIL import Image

    still = tmp_path / "photo.mp4"  # a PNG under a video's name
    Image.fromarray((random_frames(1, 32, 48)[:, 0] * 255).byte().permute(1, 2, 0).numpy()).save(
        still, format="PNG"
    )
    job = _wait(client, _upload(client, still).json()["id"])
    assert job["state"] == "done" and job["frames"] == 1, job["error"]
    layers = [f for f in job["files"] if f.startswith("layer_")]
    assert len(layers) == 2
    assert all((tmp_path / "out" / f"photo-{job['id'][:8]}" / f).is_file() for f in layers)
    assert client.get(f"/api/jobs/{job['id']}/input").content == still.read_bytes()
