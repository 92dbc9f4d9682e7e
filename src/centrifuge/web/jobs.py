"""Jobs of the web page: checking an upload, and one background worker that separates them in turn.

An upload is checked by what it decodes as, never by its name: its header is read (a still image by
Pillow, a video by PyAV) to refuse frames too large and videos too long before anything is decoded,
then the CLI's own probe runs and one frame is decoded, so a bad file gets the sentence that
``centrifuge separate`` prints for it. The stored upload is named after what it is (``.png``,
``.mp4``, ...) so the library reads it the same way it reads a file given on the command line.

Jobs run one at a time in one thread, with each model loaded once, through the library calls of
``centrifuge separate`` (:class:`~centrifuge.inference.Separator` and
:func:`~centrifuge.inference.separate_file`): the results land in ``OUT/<name>-<id>/`` with the
same files as ``centrifuge separate -o OUT``. Uploads and job records live in ``OUT/.web/<id>/``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import re
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
from PIL import Image

from centrifuge.errors import CentrifugeError, VideoError
from centrifuge.inference.results import REPORT_FILE
from centrifuge.utils import atomic_path
from centrifuge.video.read import VideoInfo, VideoReader, probe_video

__all__ = ["Job", "JobQueue", "Limits", "ServerStoppingError", "check_upload", "new_job_id"]

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{32}")
WEB_DIR = ".web"  # OUT/.web/<id>/: the upload and job.json
# Pillow's format -> the suffix the library reads as a still image
IMAGE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp"}
# PyAV's demuxer name -> a video suffix (anything else decodable is stored as .mp4: FFmpeg reads
# the content, the suffix only tells the library "video")
VIDEO_SUFFIXES = {"matroska,webm": ".mkv", "avi": ".avi", "gif": ".gif", "mpegts": ".ts"}


class ServerStoppingError(CentrifugeError):
    """Raised in a running job when the server stops: the separation unwinds (its work folder and
    lock are removed) and the job is marked failed."""


STOPPED = "the server stopped while this job ran: upload the file again."


@dataclass(frozen=True)
class Limits:
    """What one upload may be."""

    max_bytes: int = 500 * 1024 * 1024
    max_seconds: float = 600.0
    max_pixels: int = 7680 * 4320  # 8K UHD per frame
    max_queue: int = 20  # jobs waiting at once


def new_job_id() -> str:
    """128 random bits as 32 hex digits (unguessable; safe in paths and URLs)."""
    return secrets.token_hex(16)


def display_name(name: str) -> str:
    """The visitor's file name, reduced to a plain base name fit for messages and folders."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w.\- ]", "_", base).strip(" .")[:80]
    return base or "upload"


def _sniff(path: Path) -> tuple[str, int, int]:
    """``(suffix, width, height)`` from the header; raises anything on a file neither reads."""
    try:
        with warnings.catch_warnings():  # a large image is refused below, in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # header only; nothing decoded yet
        with image:
            if image.format in IMAGE_SUFFIXES:
                return IMAGE_SUFFIXES[image.format], image.width, image.height
    except Image.DecompressionBombError:
        raise
    except Exception:  # not a still image Pillow knows: try it as a video
        pass
    with av.open(str(path), mode="r") as container:
        stream = container.streams.video[0]
        if stream.width <= 0 or stream.height <= 0:
            raise ValueError("no frame size in the header")
        return VIDEO_SUFFIXES.get(container.format.name, ".mp4"), stream.width, stream.height


def _cli_error(path: Path, name: str) -> VideoError:
    """The sentence the CLI's probe gives for this file, under the visitor's file name."""
    unreadable = VideoError(f"{name}: not a readable video or image (corrupt or unknown format).")
    try:
        probe_video(path)
    except CentrifugeError as exc:
        return _named(exc, [path], name)
    except Exception:  # the probe itself tripped over the file
        return unreadable
    return unreadable


def _named(exc: CentrifugeError, paths: list[Path], name: str) -> VideoError:
    text = str(exc)
    for path in paths:
        text = text.replace(str(path), name)
    return VideoError(text)


def check_upload(path: Path, name: str, limits: Limits) -> tuple[Path, VideoInfo]:
    """Check an uploaded file by decoding it; returns its new path (with the suffix of its kind)
    and what the CLI's probe found in it.

    Raises:
        VideoError: the sentence ``centrifuge separate`` prints for this file (with the visitor's
            file name in it), or why the file exceeds ``limits``.
    """
    try:
        suffix, width, height = _sniff(path)
    except Image.DecompressionBombError:
        raise VideoError(
            f"{name}: the image is larger than this server accepts "
            f"({limits.max_pixels / 1e6:.1f} megapixels)."
        ) from None
    except Exception:  # neither reads it: the CLI's probe says what is wrong, in its words
        as_given = path.with_name(path.name + Path(name).suffix)  # the name the CLI would see
        os.replace(path, as_given)
        raise _cli_error(as_given, name) from None
    if width * height > limits.max_pixels:
        raise VideoError(
            f"{name}: {width}x{height} frames are more than this server accepts "
            f"({limits.max_pixels / 1e6:.1f} megapixels)."
        )
    final = path.with_name(path.name + suffix)
    os.replace(path, final)
    try:
        reader = VideoReader(final)  # the CLI's probe
        if reader.info.seconds > limits.max_seconds:
            raise VideoError(
                f"{name}: {reader.info.seconds:.1f} s long, more than this server accepts "
                f"({limits.max_seconds:g} s)."
            )
        frames = reader.frames()
        try:
            next(frames)  # decode one frame: a header alone is not a video
        except StopIteration:
            raise VideoError(
                f"{final}: no frame could be decoded (corrupt or truncated data)."
            ) from None
        finally:
            frames.close()
    except CentrifugeError as exc:
        raise _named(exc, [final], name) from None
    except Exception:
        raise _cli_error(final, name) from None
    return final, reader.info


@dataclass
class Job:
    """One upload and its separation; ``to_public()`` is what the page sees."""

    id: str
    name: str  # the visitor's file name (display only)
    input: str  # the stored upload
    folder: str  # OUT/<folder>/ holds the results, as ``centrifuge separate`` lays them out
    model: str
    size: int | str | None  # centrifuge.defaults.Size
    layers: str
    state: str = "queued"  # queued | running | done | failed
    stage: str = "waiting for the worker"
    total: int = 0  # frames, from the probe of the upload
    step: int = 24  # frames between progress reports (clip_len - overlap of the separation)
    done: int = 0
    updated: float | None = None  # when ``done`` last changed
    error: str | None = None
    report: dict | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None  # separation started (model loaded)
    finished: float | None = None

    def files(self) -> list[str]:
        """Names of the result files (empty until the job is done)."""
        if self.state != "done" or not self.report:
            return []
        r = self.report
        layers = [layer["file"] for layer in r["layers"]]
        return [f for f in (*layers, r["preview"], r["contact_sheet"], REPORT_FILE) if f]

    def to_public(self, ahead: int) -> dict:
        now = time.time()
        rate = eta = since = None
        if self.state == "running" and self.started and self.updated and self.done > 0:
            rate = self.done / max(self.updated - self.started, 1e-6)  # frames per second
            since = now - self.updated
            eta = max((self.total - self.done) / rate - since, 0.0)  # counts down between reports
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "stage": self.stage,
            "ahead": ahead,
            "frames_done": self.done,
            "frames_total": self.total,
            "step": self.step,
            "elapsed": round(now - (self.started or self.created), 2),
            "rate": None if rate is None else round(rate, 3),
            "since_update": None if since is None else round(since, 2),
            "eta": None if eta is None else round(eta, 1),
            "error": self.error,
            "options": {"model": self.model, "size": self.size, "layers": self.layers},
            "files": self.files(),
            "frames": self.report["frames"] if self.report else None,
            "fps": self.report["fps"] if self.report else None,
        }


class JobQueue:
    """Holds the jobs and runs them one at a time in a background thread.

    Args:
        out_dir: the output folder (``centrifuge separate -o``).
        load_model: name -> model; each name is loaded once, in the worker thread.
        run: ``(job, model, progress) -> report``: separates one job (the web app passes the
            library's ``separate_file`` path, tests may pass something else).
        limits: upload limits (the queue length among them).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        load_model: Callable[[str], object],
        run: Callable[[Job, object, Callable[[int, int], None]], dict],
        limits: Limits,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.web_dir = self.out_dir / WEB_DIR
        self.limits = limits
        self._load_model, self._run = load_model, run
        self._models: dict[str, object] = {}
        self._jobs: dict[str, Job] = {}
        self._pending: collections.deque[str] = collections.deque()
        self._running: str | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._restore()

    # -- the records on disk --------------------------------------------------------------------
    def _record(self, job: Job) -> Path:
        return self.web_dir / job.id / "job.json"

    def _save(self, job: Job) -> None:
        with atomic_path(self._record(job)) as tmp:
            tmp.write_text(json.dumps(asdict(job), indent=2))

    def _restore(self) -> None:
        """Jobs of an earlier run of the server on this folder: finished ones stay viewable,
        waiting ones wait again, one cut off while running is failed."""
        if not self.web_dir.is_dir():
            return
        found = []
        for record in self.web_dir.glob("*/job.json"):
            with contextlib.suppress(OSError, ValueError, TypeError):
                found.append(Job(**json.loads(record.read_text())))
        for job in sorted(found, key=lambda j: j.created):
            if not JOB_ID.fullmatch(job.id):
                continue
            if job.state == "running":
                job.state, job.stage = "failed", "stopped"
                job.error = STOPPED
                self._save(job)
            self._jobs[job.id] = job
            if job.state == "queued":
                self._pending.append(job.id)

    # -- the page's side ------------------------------------------------------------------------
    def new_upload_dir(self) -> tuple[str, Path]:
        job_id = new_job_id()
        folder = self.web_dir / job_id
        folder.mkdir(parents=True)
        return job_id, folder

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._pending) >= self.limits.max_queue:
                raise CentrifugeError(
                    f"{len(self._pending)} jobs are waiting already: try again in a while."
                )
            self._jobs[job.id] = job
            self._save(job)
            self._pending.append(job.id)
            self._cond.notify()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if JOB_ID.fullmatch(job_id or "") else None

    def public(self, job_id: str) -> dict | None:
        with self._cond:
            job = self.get(job_id)
            if job is None:
                return None
            ahead = 0
            if job.id in self._pending:
                ahead = list(self._pending).index(job.id) + (self._running is not None)
            return job.to_public(ahead)

    # -- the worker -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="centrifuge-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop the worker: a running job stops at its next progress report (every window),
        cleans up after itself and is marked failed; waiting jobs stay queued on disk for the next
        start. Returns whether the worker has ended (within ``timeout``)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def running(self) -> str | None:
        """The id of the job being separated, if any."""
        return self._running

    def model(self, name: str) -> object:
        if name not in self._models:
            self._models[name] = self._load_model(name)
        return self._models[name]

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._jobs[self._pending.popleft()]
                self._running = job.id
            try:
                self._execute(job)
            finally:
                with self._cond:
                    self._running = None

    def _execute(self, job: Job) -> None:
        job.state, job.stage = "running", "loading the model"
        self._save(job)  # a server stopped now leaves this job failed, not queued again
        try:
            model = self.model(job.model)
            job.stage, job.started = "separating", time.time()

            def progress(done: int, total: int) -> None:
                if self._stop:  # unwinds the separation, which removes its work folder and lock
                    raise ServerStoppingError(STOPPED)
                job.done, job.total, job.updated = done, total, time.time()
                if done >= total:
                    job.stage = "writing the preview and the contact sheet"

            job.report = self._run(job, model, progress)
            job.state, job.stage = "done", "done"
        except ServerStoppingError:
            job.state, job.stage, job.error = "failed", "stopped", STOPPED
            log.warning("job %s stopped: the server is shutting down", job.id)
        except CentrifugeError as exc:
            job.state, job.stage = "failed", "failed"
            job.error = _named(exc, [Path(job.input)], job.name).args[0]
        except Exception as exc:  # the page and the log show one line (debug: the traceback)
            log.error("job %s failed: %s: %s", job.id, exc.__class__.__name__, exc)
            log.debug("job %s failed", job.id, exc_info=True)
            job.state, job.stage = "failed", "failed"
            job.error = f"internal error: {exc.__class__.__name__}: {exc}"
        job.finished = time.time()
        self._save(job)
