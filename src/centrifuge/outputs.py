"""``centrifuge separate`` for one video file: decode -> separate -> encode, then preview, report.

Pass 1 streams the input through :class:`~centrifuge.inference.Separator` with decoding and
encoding in their own threads (PyAV and torch release the GIL), writing all N layers to hidden
temporary files while it measures, per layer, its distance to the input and to the other layers.
Then the layers are chosen and numbered (:meth:`~centrifuge.report.LayerStats.choose`):
``layer_1`` and ``layer_2`` are the two most dissimilar outputs (paper Sec. 3.2), the one closer to
the input first; ``--layers all`` adds the others after them. Pass 2 writes ``preview.mp4`` (input |
layers, labelled, side by side) and ``contact.png`` (frames sampled over time, one row per stream).
``report.json`` (settings, version, per-layer statistics) comes last. A still image gives PNG
layers instead (:mod:`centrifuge.stills`). Every file appears atomically; nothing is overwritten
without ``force``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from centrifuge.errors import CentrifugeError, OutputExistsError
from centrifuge.inference import Separator
from centrifuge.report import LayerStats, build_report, write_report
from centrifuge.stills import is_still, separate_still
from centrifuge.video.io import (
    VideoReader,
    VideoWriter,
    to_uint8_frames,
)
from centrifuge.viz import image_grid, save_png

__all__ = ["SeparateOptions", "output_paths", "separate_file", "separate_inputs"]

PREVIEW_HEIGHT = 240  # height of each panel of preview.mp4
CONTACT_COLUMNS = 6
CONTACT_HEIGHT = 120  # height of each contact-sheet cell


@dataclass(frozen=True)
class SeparateOptions:
    clip_len: int = 32
    overlap: int = 8
    size: int | None = None  # processing short side (None = native)
    layers: str = "2"  # "2" or "all"
    tile: int | None = 768
    force: bool = False


def output_paths(
    out_dir: str | os.PathLike, input_path: str | os.PathLike, n_layers: int, *, still: bool = False
) -> dict:
    """Every file ``separate`` writes for one input (the one place output names are built).

    A still image gives PNG layers and no preview (``"preview": None``).
    """
    folder = Path(out_dir) / Path(input_path).stem
    suffix = ".png" if still else ".mp4"
    return {
        "folder": folder,
        "layers": [folder / f"layer_{i + 1}{suffix}" for i in range(n_layers)],
        "preview": None if still else folder / "preview.mp4",
        "contact": folder / "contact.png",
        "report": folder / "report.json",
    }


def _threaded(iterator: Generator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a thread, ``depth`` items ahead (decode while the model runs).

    Closing the returned generator (or dropping it) stops the thread and closes ``iterator``, so a
    failed input leaves no thread behind holding its file open.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                q.put(item, timeout=0.1)
                return True
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer
            put(exc)
            return
        finally:
            iterator.close()
        put(done)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _Encoder:
    """Encodes layer chunks in a background thread."""

    def __init__(self, writers: list[VideoWriter]) -> None:
        self.writers = writers
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while (chunk := self.q.get()) is not None:
            if self.error is not None:
                continue
            try:
                for writer, layer in zip(self.writers, chunk):
                    writer.write(layer)
            except BaseException as exc:
                self.error = exc

    def put(self, layers: torch.Tensor) -> None:
        if self.error is not None:
            raise self.error
        self.q.put([to_uint8_frames(layer) for layer in layers])

    def stop(self) -> None:
        """Wait until the thread has written (or, after an error, skipped) what is queued and ends.

        The writers must not be closed or aborted before: FFmpeg crashes on a container closed
        while another thread encodes into it.
        """
        if self.thread.is_alive():
            self.q.put(None)
            self.thread.join()

    def finish(self) -> None:
        self.stop()
        if self.error is not None:
            raise self.error


def _label_strip(labels: list[str], width: int) -> np.ndarray:
    strip = Image.new("RGB", (width * len(labels), 16), (20, 20, 20))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((i * width + 4, 2), label, fill=(235, 235, 235))
    return np.asarray(strip)


def _write_preview(
    input_path: Path,
    layer_files: list[Path],
    target: Path,
    fps,
    force: bool,
    shape: tuple[int, int],
    frames: int,
) -> list[list[torch.Tensor]]:
    """Input | layers side by side (``frames`` of them); returns contact-sheet frames (one list
    per stream)."""
    h, w = shape
    ph = min(PREVIEW_HEIGHT, h) // 2 * 2
    pw = max(2, round(w * ph / h) // 2 * 2)
    labels = ["input"] + [f"layer {i + 1}" for i in range(len(layer_files))]
    strip = _label_strip(labels, pw)
    readers = [VideoReader(p, shape=(ph, pw)).frames() for p in [input_path, *layer_files]]
    picks = set(np.linspace(0, frames - 1, CONTACT_COLUMNS).round().astype(int).tolist())
    contact: list[list[torch.Tensor]] = [[] for _ in readers]
    writer = VideoWriter(
        target,
        fps=fps,
        width=pw * len(readers),
        height=ph + strip.shape[0],
        audio_from=input_path,
        overwrite=force,
    )
    try:
        for t, frames in enumerate(zip(*readers)):
            writer.write(np.concatenate([strip, np.concatenate(frames, axis=1)], axis=0)[None])
            if t in picks:
                for row, f in zip(contact, frames):
                    row.append(torch.from_numpy(f).permute(2, 0, 1).float() / 255)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return contact


def _separate_video(
    separator: Separator,
    reader: VideoReader,
    paths: dict,
    options: SeparateOptions,
    work: Path,
    progress: Callable[[int, int], None] | None,
    stage: Callable[[str], None] | None,
) -> tuple[list[int], LayerStats, int]:
    """Pass 1 (all N layers into ``work``), choose and publish the layers, pass 2 (preview and
    contact sheet). Returns the chosen output indices, the statistics and the frame count."""
    info, shape, n = reader.info, reader.shape, separator.n_outputs
    raw = [
        VideoWriter(
            work / f"out_{i}.mp4",
            fps=info.rate,
            width=shape[1],
            height=shape[0],
            audio_from=reader.path,
            threads=1,  # the model owns the cores; one encoder thread writes all layers
        )
        for i in range(n)
    ]
    encoder = _Encoder(raw)
    stats = LayerStats(n)
    windows = _threaded(reader.windows(options.clip_len, options.overlap))
    done = 0
    try:
        for start, layers, frames in separator.stream(windows):
            encoder.put(layers)
            stats.add(layers, frames)
            done = start + layers.shape[2]
            if progress is not None:
                progress(done, info.frames)
        encoder.finish()
        produced = [w.close() for w in raw]
    except BaseException:
        encoder.stop()
        windows.close()
        for w in raw:
            w.abort()
        raise
    chosen = stats.choose(options.layers)
    for src, dst in zip((produced[i] for i in chosen), paths["layers"]):
        os.replace(src, dst)
    if stage is not None:
        stage("writing preview")
    contact = _write_preview(
        reader.path, paths["layers"], paths["preview"], info.rate, options.force, shape, done
    )
    labels = ["input"] + [f"layer {i + 1}" for i in range(len(chosen))]
    sheet = image_grid(contact, row_labels=labels, cell_height=CONTACT_HEIGHT)
    save_png(sheet, paths["contact"])
    return chosen, stats, done


def separate_file(
    separator: Separator,
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SeparateOptions,
    *,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> dict:
    """Separate one video or still image into ``out_dir/<stem>/``; returns the report (also
    report.json).

    ``progress(done, total)`` is called with 0 before the first frame and after every window;
    ``stage(text)`` announces the steps after the frames are separated ("writing preview").
    """
    started = time.monotonic()
    input_path = Path(input_path)
    reader = VideoReader(input_path)  # probes the input: a clear error before anything is created
    info = reader.info
    still = is_still(input_path)
    n = separator.n_outputs
    m = n if options.layers == "all" else 2
    paths = output_paths(out_dir, input_path, m, still=still)
    finals = [*paths["layers"], paths["preview"], paths["contact"], paths["report"]]
    existing = [p for p in finals if p is not None and p.exists()]
    if existing and not options.force:
        raise OutputExistsError(f"{existing[0]} exists: pass --force to overwrite it.")
    folder = paths["folder"]
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=folder))
    if progress is not None:
        progress(0, info.frames)
    try:
        if still:
            chosen, stats = separate_still(
                separator, reader, paths["layers"], paths["contact"], options.layers
            )
            done = 1
            if progress is not None:
                progress(1, 1)
        else:
            chosen, stats, done = _separate_video(
                separator, reader, paths, options, work, progress, stage
            )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if created:  # a failed input leaves no empty folder behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = build_report(
        input_path=input_path,
        model_name=model_name,
        device=str(separator.device),
        frames=done,
        fps=info.fps,
        shape=reader.shape,
        n_outputs=n,
        layer_files=paths["layers"],
        chosen=chosen,
        stats=stats,
        preview=paths["preview"],
        contact=paths["contact"],
        settings={
            "model": model_name,
            "layers": options.layers,
            "size": options.size or "native",
            "clip_len": options.clip_len,
            "overlap": options.overlap,
            "tile": options.tile,
        },
        seconds=time.monotonic() - started,
    )
    write_report(report, paths["report"])
    return report


def separate_inputs(
    separator: Separator,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: SeparateOptions,
    *,
    model_name: str = "custom",
    progress: Callable[[str, int, int], None] | None = None,
    stage: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[str, dict | CentrifugeError]]:
    """Separate several videos; yields ``(input, report)`` or ``(input, error)`` for each, so that a
    failing input never stops the others. Two inputs with the same stem would share
    ``out_dir/<stem>/``: the second one is reported as an error instead of overwriting the first.
    """
    stems: dict[str, str] = {}
    for path in map(str, inputs):
        first = stems.setdefault(Path(path).stem, path)
        if first != path:
            yield (
                path,
                CentrifugeError(
                    f"{path}: same name as {first}, whose outputs it would "
                    "overwrite (separate it in another call or rename it)."
                ),
            )
            continue
        report_progress = report_stage = None
        if progress is not None:

            def report_progress(done: int, total: int, path: str = path) -> None:
                progress(path, done, total)

        if stage is not None:

            def report_stage(text: str, path: str = path) -> None:
                stage(path, text)

        try:
            yield (
                path,
                separate_file(
                    separator,
                    path,
                    out_dir,
                    options,
                    model_name=model_name,
                    progress=report_progress,
                    stage=report_stage,
                ),
            )
        except CentrifugeError as exc:
            yield path, exc
