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
import dataclasses
import fcntl
import os
import queue
import re
import shutil
import stat
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
from centrifuge.utils import available_memory
from centrifuge.video.read import VideoReader, resized_shape
from centrifuge.video.transforms import resize
from centrifuge.video.write import VideoWriter, quantize_frames
from centrifuge.viz import image_grid, save_png

__all__ = [
    "SeparateOptions",
    "check_window_memory",
    "output_paths",
    "safe_name",
    "separate_file",
    "separate_inputs",
    "window_bytes",
]

MAX_NAME_BYTES = 200  # result folder names (file systems allow 255, work names add a suffix)
PREVIEW_HEIGHT = 240  # height of each panel of preview.mp4
CONTACT_COLUMNS = 6
CONTACT_HEIGHT = 120  # height of each contact-sheet cell
RESIZE_BYTES = 64 << 20  # layers are brought back to the input size this many bytes at a time


@dataclass(frozen=True)
class SeparateOptions:
    clip_len: int = 32
    overlap: int = 8
    size: int | None = None  # processing short side (None = native)
    layers: str = "2"  # "2" or "all"
    tile: int | None = 768
    force: bool = False
    memory_limit: int | None = None  # bytes a window may take (None: the memory available now)


def separator_for(
    model: torch.nn.Module, options: SeparateOptions, device: torch.device
) -> Separator:
    """The :class:`~centrifuge.inference.Separator` that :func:`separate_file` expects for
    ``options`` (the same windows and tiles; bf16 and channels-last on CUDA). The CLI and the web
    page both build it here, so their windowing cannot drift apart."""
    return Separator(
        model,
        clip_len=options.clip_len,
        overlap=options.overlap,
        size=options.size,
        tile=options.tile,
        device=device,
        bf16=device.type == "cuda",
        channels_last=True,
    )


def safe_name(stem: str) -> str:
    """The folder name for an input's results: never ``.``, ``..``, empty, hidden or holding a
    separator, at most :data:`MAX_NAME_BYTES` bytes, so that it always names a new entry inside the
    output folder (and never one of this program's hidden work files there)."""
    name = "".join("_" if c in "/\\" or ord(c) < 32 or c == "\x7f" else c for c in stem)
    if not name or name.startswith("."):
        name = f"_{name}"
    name = name[:MAX_NAME_BYTES]
    while len(os.fsencode(name)) > MAX_NAME_BYTES:  # cut whole characters, never half of one
        name = name[:-1]
    return name


def output_paths(
    out_dir: str | os.PathLike, input_path: str | os.PathLike, n_layers: int, *, still: bool = False
) -> dict:
    """Every file ``separate`` writes for one input (the one place output names are built).

    A still image gives PNG layers and no preview (``"preview": None``).
    """
    return _result_files(Path(out_dir) / safe_name(Path(input_path).stem), n_layers, still)


def _result_files(folder: Path, n_layers: int, still: bool = False) -> dict:
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
    """Encodes layer chunks in a background thread, resizing them to the writers' size there (a
    few frames at a time, so that full-resolution layers are never held for a whole window)."""

    def __init__(self, writers: list[VideoWriter], shape: tuple[int, int]) -> None:
        self.writers = writers
        self.shape = shape
        self.q: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _write(self, chunk: list[torch.Tensor]) -> None:
        h, w = self.shape
        step = max(1, RESIZE_BYTES // (12 * h * w))  # float32 RGB frames per resize
        for writer, layer in zip(self.writers, chunk):
            if layer.shape[-2:] == self.shape:  # quantised by put()
                writer.write(layer)
                continue
            for t in range(0, layer.shape[1], step):
                writer.write(resize(layer[:, t : t + step], h, w))

    def _work(self) -> None:
        while (chunk := self.q.get()) is not None:
            if self.error is not None:
                continue
            try:
                self._write(chunk)
            except BaseException as exc:
                self.error = exc

    def put(self, layers: torch.Tensor) -> None:
        """Queue layers ``[N, C, t, h, w]`` in ``[0, 1]``, any ``h, w`` (resized in the thread)."""
        if self.error is not None:
            raise self.error
        if layers.shape[-2:] == self.shape:
            self.q.put([quantize_frames(layer) for layer in layers])  # 4x smaller than floats
        else:
            self.q.put(list(layers))

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


def _label_strip(labels: list[str], width: int) -> torch.Tensor:
    """The labels above the preview's columns, ``[C, 16, width * len(labels)]`` in ``[0, 1]``."""
    strip = Image.new("RGB", (width * len(labels), 16), (20, 20, 20))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((i * width + 4, 2), label, fill=(235, 235, 235))
    return torch.from_numpy(np.array(strip)).permute(2, 0, 1).float() / 255


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
        height=ph + strip.shape[1],
        audio_from=input_path,
        overwrite=force,
    )
    try:
        for t, frames in enumerate(zip(*readers)):
            side_by_side = torch.cat(frames, dim=-1)  # [C, ph, pw * streams]
            writer.write(torch.cat([strip, side_by_side], dim=-2)[:, None])
            if t in picks:
                for row, f in zip(contact, frames):
                    row.append(f)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return contact


def window_bytes(shape: tuple[int, int], clip_len: int, n_outputs: int) -> int:
    """Estimated peak memory of separating windows of ``clip_len`` frames of ``shape = (H, W)``
    (processing size) into ``n_outputs`` layers: the decoded window and its float copy, the layers
    being predicted, cross-faded and queued for encoding (each float32 RGB)."""
    h, w = shape
    return clip_len * h * w * 12 * (4 + 4 * n_outputs)


def check_window_memory(
    path: Path, shape: tuple[int, int], options: SeparateOptions, n_outputs: int
) -> None:
    """Refuse, before any work, a window that would not fit in memory, naming settings that do.

    Raises:
        CentrifugeError: the window needs more than ``options.memory_limit`` bytes (default: the
        memory available now).
    """
    limit = options.memory_limit if options.memory_limit is not None else available_memory()
    need = window_bytes(shape, options.clip_len, n_outputs)
    if limit is None or need <= limit:
        return
    h, w = shape
    per_frame = window_bytes(shape, 1, n_outputs)
    frames = int(limit // per_frame)
    fits = []
    if frames > options.overlap:
        fits.append(f"--clip-len {frames}")
    elif frames >= 2:
        fits.append(f"--clip-len {frames} --overlap {frames // 4}")
    short = min(h, w)
    while (
        short > 32 and window_bytes(resized_shape(h, w, short), options.clip_len, n_outputs) > limit
    ):
        short = max(32, short * 3 // 4 // 16 * 16)
    if window_bytes(resized_shape(h, w, short), options.clip_len, n_outputs) <= limit:
        fits.insert(0, f"--size {short}")
    advice = " or ".join(fits) or "a smaller --clip-len and --size"
    raise CentrifugeError(
        f"{path}: windows of {options.clip_len} frames at {w}x{h} need about "
        f"{need / 2**30:.1f} GiB of memory, {limit / 2**30:.1f} GiB is available: "
        f"pass {advice}."
    )


_RESULT_FILE = re.compile(r"layer_\d+\.(mp4|png)|preview\.mp4|contact\.png|report\.json")
_WORK_SUFFIX = 8  # random characters tempfile.mkdtemp adds


def _output_error(exc: OSError, where: Path) -> CentrifugeError:
    cause = exc.strerror or str(exc) or exc.__class__.__name__
    return CentrifugeError(f"{where}: cannot write the results ({cause}).")


def _output_folder(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CentrifugeError(f"{out}: exists and is not a folder (-o needs a folder).") from None
    except OSError as exc:
        raise _output_error(exc, out) from exc
    if not out.is_dir():
        raise CentrifugeError(f"{out}: not a folder (-o needs a folder).")
    return out


@contextlib.contextmanager
def _result_lock(folder: Path) -> Iterator[None]:
    """Hold ``OUTDIR/.<name>.lock`` for the result folder ``OUTDIR/<name>``: one run at a time.

    The lock is the kernel's (``flock``): a killed run releases it. The file is removed when the run
    ends; a run that locked a file already removed tries again on the new one.

    Raises:
        CentrifugeError: another run holds it.
    """
    lock = folder.with_name(f".{folder.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CentrifugeError(
                f"{folder}: in use by another centrifuge run (try again when it ends)."
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _clean_stale(folder: Path) -> None:
    """Remove what killed runs left for this result folder (call with its lock held): hidden work
    folders beside it, and temporary files of earlier versions inside it."""
    prefix = f".{folder.name}.work-"
    with os.scandir(folder.parent) as entries:
        stale = [
            e.path
            for e in entries
            if e.name.startswith(prefix) and len(e.name) == len(prefix) + _WORK_SUFFIX
        ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if folder.is_dir() and not folder.is_symlink():
        for entry in folder.iterdir():
            if entry.name.startswith(".work-") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".") and ".partial" in entry.name:
                entry.unlink(missing_ok=True)


def _check_replaceable(folder: Path, force: bool) -> None:
    """Whether the results may go to ``folder``: absent, empty, or (with ``force``) a result folder.

    Raises:
        OutputExistsError: results are there and ``force`` is off, or ``folder`` holds anything
        else (``--force`` replaces results, never other files).
    """
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise OutputExistsError(
            f"{folder} exists and is not a result folder: move it or choose another -o."
        )
    entries = sorted(os.listdir(folder))
    foreign = [name for name in entries if not _RESULT_FILE.fullmatch(name)]
    if foreign:
        raise OutputExistsError(
            f"{folder} holds {foreign[0]!r}, which is not a centrifuge result: "
            "move it or choose another -o."
        )
    if entries and not force:
        raise OutputExistsError(f"{folder / entries[0]} exists: pass --force to replace it.")


def _publish(stage: Path, folder: Path, work: Path) -> None:
    """Put the complete result folder ``stage`` in place of ``folder``: two renames, so that
    ``folder`` always holds a complete result or nothing (what it held goes into ``work``)."""
    if os.path.lexists(folder):
        os.rename(folder, work / "replaced")
    os.rename(stage, folder)


def separate_file(
    separator: Separator,
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SeparateOptions,
    *,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> dict:
    """Separate one video or still image into ``out_dir/<name>/``; returns the report (also
    report.json).

    ``progress(done, total)`` is called with 0 before the first frame and after every window;
    ``on_step(text)`` announces the steps after the frames are separated ("writing preview").

    The whole result is written into a hidden work folder beside it and renamed into place last,
    so ``out_dir/<name>/`` holds a complete result or none, whatever stops the run. ``<name>`` is
    :func:`safe_name` of the input's stem. One run at a time writes a result folder; leftovers of
    killed runs are removed first; ``force`` replaces an earlier result as a whole.

    Raises:
        CentrifugeError: the input cannot be read, the window does not fit in memory, the results
        exist (without ``force``), another run is writing them, or they cannot be written (one line
        naming the folder and the cause: read-only, full disk...).
    """
    input_path = Path(input_path)
    reader = VideoReader(input_path, size=options.size)  # probes; decodes at the processing size
    n = separator.n_outputs
    paths = output_paths(out_dir, input_path, n if options.layers == "all" else 2)
    if is_still(input_path):  # one frame, whose layers come back at the image's own size
        native = (reader.info.height, reader.info.width)
        check_window_memory(input_path, native, dataclasses.replace(options, clip_len=1), n)
    else:
        check_window_memory(input_path, reader.shape, options, n)
    out = _output_folder(out_dir)
    folder = out / paths["folder"].name
    try:
        with _result_lock(folder):
            _clean_stale(folder)
            _check_replaceable(folder, options.force)
            work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.work-", dir=out))
            try:
                stage = work / "result"
                stage.mkdir()
                if progress is not None:
                    progress(0, reader.info.frames)
                report = _separate_into(
                    separator, reader, stage, work, options, model_name, progress, on_step
                )
                _publish(stage, folder, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except OSError as exc:  # the input's errors are VideoErrors: this is the output side
        raise _output_error(exc, folder) from exc
    return report


def _separate_into(
    separator: Separator,
    reader: VideoReader,
    stage: Path,
    work: Path,
    options: SeparateOptions,
    model_name: str,
    progress: Callable[[int, int], None] | None,
    on_step: Callable[[str], None] | None,
) -> dict:
    """Write the layers, preview, contact sheet and report of ``reader``'s input into ``stage``."""
    started = time.monotonic()
    info = reader.info
    n = separator.n_outputs
    m = n if options.layers == "all" else 2
    still = is_still(reader.path)
    paths = _result_files(stage, m, still)  # the final names, inside the stage folder
    if still:
        chosen, stats = separate_still(
            separator, reader.path, paths["layers"], paths["contact"], options.layers
        )
        done = 1
        if progress is not None:
            progress(1, 1)
    else:
        chosen, stats, done = _separate_video(
            separator, reader, paths, work, options, progress, on_step
        )
    report = build_report(
        input_path=reader.path,
        model_name=model_name,
        device=str(separator.device),
        frames=done,
        fps=info.fps,
        shape=(info.height, info.width),
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
        extra={"fps_source": info.rate_source},
    )
    write_report(report, paths["report"])
    return report


def _separate_video(
    separator: Separator,
    reader: VideoReader,
    paths: dict,
    work: Path,
    options: SeparateOptions,
    progress: Callable[[int, int], None] | None,
    on_step: Callable[[str], None] | None,
) -> tuple[list[int], LayerStats, int]:
    """Pass 1 (all N layers into ``work``), choose and place the layers, pass 2 (preview and
    contact sheet). Returns the chosen output indices, the statistics and the frame count."""
    info, input_path = reader.info, reader.path
    n = separator.n_outputs
    shape = (info.height, info.width)
    raw = [
        VideoWriter(
            work / f"out_{i}.mp4",
            fps=info.rate,
            width=shape[1],
            height=shape[0],
            audio_from=input_path,
            threads=1,  # the model owns the cores; one encoder thread writes all layers
        )
        for i in range(n)
    ]
    encoder = _Encoder(raw, shape)
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
    if on_step is not None:
        on_step("writing preview")
    contact = _write_preview(
        input_path, paths["layers"], paths["preview"], info.rate, False, shape, done
    )
    labels = ["input"] + [f"layer {i + 1}" for i in range(len(chosen))]
    sheet = image_grid(contact, row_labels=labels, cell_height=CONTACT_HEIGHT)
    save_png(sheet, paths["contact"])
    return chosen, stats, done


def separate_inputs(
    separator: Separator,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: SeparateOptions,
    *,
    model_name: str = "custom",
    progress: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[str, dict | CentrifugeError]]:
    """Separate several videos; yields ``(input, report)`` or ``(input, error)`` for each, so that a
    failing input never stops the others. Two inputs whose names map to the same result folder
    (:func:`safe_name`) would share it: the second one is reported as an error instead.
    """
    stems: dict[str, str] = {}
    for path in map(str, inputs):
        first = stems.setdefault(safe_name(Path(path).stem), path)
        if first != path:
            yield (
                path,
                CentrifugeError(
                    f"{path}: same result folder as {first}, whose outputs it would "
                    "overwrite (separate it in another call or rename it)."
                ),
            )
            continue
        report_progress = report_step = None
        if progress is not None:

            def report_progress(done: int, total: int, path: str = path) -> None:
                progress(path, done, total)

        if on_step is not None:

            def report_step(text: str, path: str = path) -> None:
                on_step(path, text)

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
                    on_step=report_step,
                ),
            )
        except CentrifugeError as exc:
            if path not in str(exc):  # every error line names its input
                exc = type(exc)(f"{path}: {exc}")
            yield path, exc
