"""The web app: a Starlette application over :class:`~centrifuge.web.jobs.JobQueue`.

Routes (``ID`` is a job id, 32 hex digits):

* ``GET /``, ``GET /jobs/ID``: the page (a job's URL shows that job again after a reload);
* ``GET /api/info``: models, limits and the line about what the model is good at;
* ``POST /api/jobs?name=&size=&layers=&model=``: the file as the request body (streamed to disk and
  cut off at the size limit), checked by decoding; 201 with the job, 400/413 with ``{"error"}``;
* ``GET /api/jobs/ID``: state, place in the queue, frames done / total, time left;
* ``GET /api/jobs/ID/input``, ``GET /api/jobs/ID/files/NAME``: the upload and the result files of a
  finished job; ``NAME`` must be one of the job's own files, so no URL reaches any other file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from centrifuge import defaults
from centrifuge.errors import CentrifugeError
from centrifuge.inference.results import safe_name
from centrifuge.web.jobs import Job, JobQueue, Limits, check_upload, display_name

__all__ = ["create_app", "listen", "run_server"]

log = logging.getLogger(__name__)

STATIC = resources.files("centrifuge.web") / "static"
SIZES = defaults.SIZE_CHOICES
DEFAULT_SIZE = defaults.SIZE
STEP = defaults.CLIP_LEN - defaults.OVERLAP  # frames between progress reports
MODEL_NOTES = {
    "small": "The bundled small model was trained on blends of two videos. On such blends the "
    "layers it writes score 0.871x the loss of returning the input unchanged (64 validation "
    "blends); on real videos it today mostly splits by brightness and "
    "contrast, rarely into a clean reflection and scene.",
    "untrained": "This model is untrained: its layers show what the pipeline does, not a "
    "separation (for testing).",
}


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _separate_job(
    job: Job, model, progress: Callable[[int, int], None], *, out_dir, device, backend
):
    """One job through the library calls of ``centrifuge separate``, with its default options."""
    from centrifuge.inference import SeparateOptions, Separator, separate_file

    options = SeparateOptions(layers=job.layers, force=False)
    separator = Separator(model, size=job.size, device=device, backend=backend)
    # the upload is OUT/.web/<id>/<folder>.<ext>: its stem names OUT/<folder>/, as on the CLI
    return separate_file(
        separator, job.input, out_dir, options, model_name=job.model, progress=progress
    )


def create_app(
    out_dir: str | os.PathLike = "separated",
    *,
    model: str = "small",
    device: str = "auto",
    backend: str = defaults.BACKEND,
    limits: Limits | None = None,
    load_model: Callable[[str], object] | None = None,
) -> Starlette:
    """The web app; its job worker starts with the app and stops with it.

    Args:
        out_dir: results go to ``out_dir/<name>-<id>/`` (the layout of ``centrifuge separate``).
        model: the default model (a registered name or a weights/checkpoint path); the page also
            offers the other registered models that ship weights. Nothing else can be asked for.
        device: ``auto | cpu | cuda``.
        backend: how the model runs (:data:`centrifuge.defaults.BACKENDS`).
        limits: upload limits.
        load_model: name -> model (default: :func:`centrifuge.pretrained.load_model`).
    """
    from centrifuge.models.registry import MODEL_CONFIGS
    from centrifuge.pretrained import bundled_weights
    from centrifuge.pretrained import load_model as load_pretrained
    from centrifuge.utils import pick_device

    limits = limits or Limits()
    out_dir = Path(out_dir)
    torch_device = pick_device(device)
    models = [model] + [n for n in MODEL_CONFIGS if n != model and bundled_weights(n) is not None]
    load = load_model or (lambda name: load_pretrained(name, device=torch_device))

    def run(job: Job, net, progress: Callable[[int, int], None]) -> dict:
        return _separate_job(
            job, net, progress, out_dir=out_dir, device=torch_device, backend=backend
        )

    queue = JobQueue(out_dir, load_model=load, run=run, limits=limits)
    if load_model is None:
        queue.model(model)  # now: a bad --model is one line at start, not a failure per job

    def model_note(name: str) -> str:
        if name in MODEL_CONFIGS and bundled_weights(name) is None:
            return MODEL_NOTES["untrained"]
        return MODEL_NOTES.get(name, "A model you trained or converted yourself.")

    async def page(request: Request) -> Response:
        return HTMLResponse((STATIC / "index.html").read_text())

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "models": [{"name": m, "note": model_note(m)} for m in models],
                "sizes": list(SIZES),
                "default_size": DEFAULT_SIZE,
                "max_bytes": limits.max_bytes,
                "max_seconds": limits.max_seconds,
            }
        )

    def options(request: Request) -> tuple[str, defaults.Size, str, str]:
        q = request.query_params
        name = display_name(q.get("name", ""))
        size, layers, chosen = q.get("size", DEFAULT_SIZE), q.get("layers", "2"), q.get("model")
        if size not in SIZES:
            raise CentrifugeError(f"size must be one of {', '.join(SIZES)}, got {size!r}.")
        if layers not in ("2", "all"):
            raise CentrifugeError(f"layers must be 2 or all, got {layers!r}.")
        chosen = chosen or models[0]
        if chosen not in models:
            raise CentrifugeError(f"unknown model {chosen!r}: choose from {', '.join(models)}.")
        return name, defaults.parse_size(size), layers, chosen

    async def upload(request: Request) -> Response:
        try:
            name, size, layers, chosen = options(request)
        except CentrifugeError as exc:
            return _error(str(exc))
        too_large = f"{name}: larger than this server accepts ({limits.max_bytes / 1e6:.0f} MB)."
        with contextlib.suppress(ValueError):
            if int(request.headers.get("content-length", "0")) > limits.max_bytes:
                return _error(too_large, 413)
        job_id, folder = queue.new_upload_dir()
        base = Path(name).stem or "upload"
        while len(base.encode()) > 150:  # the job id stays in the folder's name
            base = base[:-1]
        stem = safe_name(f"{base}-{job_id[:8]}")  # as separate names it
        raw = folder / stem  # its suffix comes from what it decodes as
        ok = False
        try:
            received = 0
            with raw.open("wb") as f:
                try:
                    async for chunk in request.stream():
                        received += len(chunk)
                        if received > limits.max_bytes:
                            return _error(too_large, 413)
                        f.write(chunk)
                except ClientDisconnect:  # nobody is left to answer: one line in the log
                    log.warning("upload of %s cut off by the client after %d bytes", name, received)
                    return _error(f"{name}: the upload was cut off.", 400)
            stored, probe = await run_in_threadpool(check_upload, raw, name, limits)
            job = Job(
                id=job_id,
                name=name,
                input=str(stored),
                folder=stem,
                model=chosen,
                size=size,
                layers=layers,
                total=probe.frames,
                step=STEP,
            )
            queue.submit(job)
            ok = True
            return JSONResponse(queue.public(job_id), status_code=201)
        except CentrifugeError as exc:
            return _error(str(exc))
        finally:
            if not ok:
                shutil.rmtree(folder, ignore_errors=True)

    async def job_state(request: Request) -> Response:
        state = queue.public(request.path_params["job_id"])
        return JSONResponse(state) if state else _error("no such job.", 404)

    def finished(request: Request) -> Job | None:
        job = queue.get(request.path_params["job_id"])
        return job if job is not None and job.state == "done" else None

    async def job_input(request: Request) -> Response:
        job = finished(request)
        if job is None:
            return _error("no such finished job.", 404)
        return FileResponse(job.input, filename=job.name)

    async def job_file(request: Request) -> Response:
        job, name = finished(request), request.path_params["name"]
        if job is None or name not in job.files():
            return _error("no such file.", 404)
        path = out_dir / job.folder / name
        if not path.is_file():
            return _error("no such file.", 404)
        return FileResponse(path, filename=f"{job.folder}-{name}")

    routes = [
        Route("/", page),
        Route("/jobs/{job_id}", page),
        Route("/api/info", info),
        Route("/api/jobs", upload, methods=["POST"]),
        Route("/api/jobs/{job_id}", job_state),
        Route("/api/jobs/{job_id}/input", job_input),
        Route("/api/jobs/{job_id}/files/{name}", job_file),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        queue.start()
        try:
            yield
        finally:
            await run_in_threadpool(_stop_worker, queue)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.queue = queue
    return app


def _stop_worker(queue: JobQueue) -> None:
    """Stop the job worker and wait for it: a running job stops at its next window, removes its
    work folder and lock and is marked failed. Waiting matters: a process that exits while the
    worker is inside the model or FFmpeg dies with SIGABRT and leaves the job's files behind."""
    if queue.running is not None:
        log.warning("stopping: the running job ends at its next window")
    queue.stop()


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port`` 0: any free one), or a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CentrifugeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    return sock


def run_server(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until interrupted (uvicorn, quiet: errors only)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
