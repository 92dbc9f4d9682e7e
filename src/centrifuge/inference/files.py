"""``centrifuge separate`` for files: plan -> one pass -> check the choice -> sheet -> report.

* plan: probe the input, name its result files (:mod:`~centrifuge.inference.results`), refuse a
  window that would not fit in memory;
* one pass (:class:`~centrifuge.inference.video_pass.SeparationPass`): separate, measure the layers
  (:class:`~centrifuge.inference.report.LayerStats`), encode the chosen layers and ``preview.mp4``;
* choose: ``layer_1`` and ``layer_2`` are the two most dissimilar outputs (paper Sec. 3.2), the one
  closer to the input first; ``--layers all`` adds the others after them. The pass chooses on the
  first frames; if the whole video's statistics choose otherwise, the pass runs again with that
  choice, so the result is the same as choosing at the end;
* ``contact.png`` from frames the pass kept, and ``report.json`` (settings, version, per-layer
  statistics) last.

A still image gives PNG layers instead (:mod:`~centrifuge.inference.stills`). The whole result
appears at once or not at all (:func:`~centrifuge.inference.results.staged_result`); nothing is
overwritten without ``force``.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from centrifuge.errors import CentrifugeError
from centrifuge.inference.preview import write_contact_sheet
from centrifuge.inference.report import build_report, layer_count, write_report
from centrifuge.inference.results import result_files, result_name, staged_result
from centrifuge.inference.separator import Separator, SizePlan
from centrifuge.inference.stills import is_still, separate_still
from centrifuge.inference.video_pass import SeparationPass
from centrifuge.utils import available_memory
from centrifuge.video.notes import source_notes
from centrifuge.video.read import VideoReader, resized_shape

__all__ = [
    "SeparateOptions",
    "at_processing_size",
    "check_window_memory",
    "plan_window",
    "separate_file",
    "separate_inputs",
    "window_bytes",
]


@dataclass(frozen=True)
class SeparateOptions:
    """What to write (the windows, sizes and tiles belong to the :class:`Separator`)."""

    layers: Literal["2", "all"] = "2"
    force: bool = False
    memory_limit: int | None = None  # bytes a window may take (None: the memory available now)


# What a window costs, fitted to measurements (bench/RESULTS.md, "4K peak RSS"): 3 N + 14 float32
# RGB copies of the window at the processing size (the decoded windows queued ahead, the model's N
# outputs, the tile and cross-fade canvases, the finished chunk, the chunks queued for encoding),
# the model's own activations per pixel and frame of one tile (the bundled `small` through
# OpenVINO: 1.5 GB for 8 x 768 x 768, 2.6 GB for 16 x 768 x 768), and what the process holds
# before the first window (model, engine, libraries).
MODEL_BYTES_PER_PIXEL = 260
BASE_BYTES = 1 << 30
MIN_CLIP_LEN = 8  # the model's stride in time: shorter windows are padded to it anyway
MEMORY_MARGIN = 0.8  # plan within this share of the memory available (others use the machine too)


def window_bytes(
    shape: tuple[int, int],
    clip_len: int,
    n_outputs: int,
    *,
    tile: int | None = None,
    full_shape: tuple[int, int] | None = None,
) -> int:
    """Estimated peak memory of separating windows of ``clip_len`` frames of ``shape = (H, W)``
    (processing size) into ``n_outputs`` layers, tiled at ``tile`` pixels: ``3 N + 14`` float32
    RGB copies of a window plus the model's activations for one tile (:data:`MODEL_BYTES_PER_PIXEL`
    per pixel and frame) and :data:`BASE_BYTES`; with ``full_shape``, a residual model's layers
    are made at that size a few frames at a time as they are encoded (about eight full-size
    frames)."""
    h, w = shape
    th, tw = (min(h, tile), min(w, tile)) if tile else (h, w)
    per_frame = h * w * 12 * (3 * n_outputs + 14) + th * tw * MODEL_BYTES_PER_PIXEL
    full = 8 * 12 * full_shape[0] * full_shape[1] if full_shape else 0
    return clip_len * per_frame + full + BASE_BYTES


def _fitting_side(h: int, w: int, fits) -> int | None:
    """The largest short side (a multiple of 16, at least 32) at which ``fits(shape)`` holds."""
    short = min(h, w)
    while short > 32 and not fits(resized_shape(h, w, short)):
        short = max(32, short * 3 // 4 // 16 * 16)
    return short if fits(resized_shape(h, w, short)) else None


def _memory_limit(limit: int | None) -> int | None:
    """``limit``, or the memory available now less :data:`MEMORY_MARGIN` (``None``: unknown)."""
    if limit is not None:
        return limit
    available = available_memory()
    return None if available is None else int(available * MEMORY_MARGIN)


def check_window_memory(
    path: Path,
    shape: tuple[int, int],
    *,
    clip_len: int,
    overlap: int,
    n_outputs: int,
    limit: int | None = None,
    tile: int | None = None,
    full_shape: tuple[int, int] | None = None,
) -> None:
    """Refuse, before any work, windows of ``clip_len`` frames of ``shape = (H, W)`` (processing
    size) into ``n_outputs`` layers that would not fit in memory, naming a ``--size`` that does.

    Raises:
        CentrifugeError: the window needs more than ``limit`` bytes (default: the memory available
        now, less a margin).
    """
    limit = _memory_limit(limit)
    extra = {"tile": tile, "full_shape": full_shape}
    need = window_bytes(shape, clip_len, n_outputs, **extra)
    if limit is None or need <= limit:
        return
    h, w = shape
    side = _fitting_side(h, w, lambda s: window_bytes(s, clip_len, n_outputs, **extra) <= limit)
    advice = f"pass --size {side}" if side else "free some memory"
    raise CentrifugeError(
        f"{path}: windows of {clip_len} frames at {w}x{h} need about "
        f"{need / 2**30:.1f} GiB of memory, {limit / 2**30:.1f} GiB is available: {advice}."
    )


def plan_window(
    path: Path,
    shape: tuple[int, int],
    *,
    clip_len: int,
    overlap: int,
    n_outputs: int,
    limit: int | None = None,
    tile: int | None = None,
    full_shape: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """``(clip_len, overlap)`` for windows of ``shape`` that fit in memory: as asked when they
    fit, else the longest shorter window (a multiple of :data:`MIN_CLIP_LEN`, overlap cut to a
    quarter of it) that does, so that any resolution runs with the default settings.

    Raises:
        CentrifugeError: not even :data:`MIN_CLIP_LEN` frames fit (naming a ``--size`` that does).
    """
    limit = _memory_limit(limit)
    extra = {"tile": tile, "full_shape": full_shape}
    if limit is None or window_bytes(shape, clip_len, n_outputs, **extra) <= limit:
        return clip_len, overlap
    for shorter in range(clip_len // MIN_CLIP_LEN * MIN_CLIP_LEN, MIN_CLIP_LEN - 1, -MIN_CLIP_LEN):
        if shorter < clip_len and window_bytes(shape, shorter, n_outputs, **extra) <= limit:
            return shorter, min(overlap, shorter // 4)
    shortest = min(clip_len, MIN_CLIP_LEN)
    check_window_memory(
        path, shape, clip_len=shortest, overlap=0, n_outputs=n_outputs, limit=limit, **extra
    )
    return shortest, min(overlap, shortest // 4)


def at_processing_size(separator: Separator, shape: tuple[int, int]) -> Separator:
    """The same separator (model, engine, windows) given frames already at its processing size
    ``shape = (h, w)``: it runs them as they are and gives its layers at that size (for a residual
    model, its prediction; the pass adds the differences to the full-size input)."""
    view = copy.copy(separator)
    view.size = min(shape)  # the short side of frames of this shape: no further resizing
    return view


def separate_file(
    separator: Separator,
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SeparateOptions = SeparateOptions(),
    *,
    model_name: str = "custom",
    progress: Callable[[int, int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    on_layers: Callable[[int, torch.Tensor], None] | None = None,
) -> dict:
    """Separate one video or still image into ``out_dir/<name>/``; returns the report (also
    report.json). ``<name>`` is :func:`~centrifuge.inference.results.result_name` of the input.

    ``progress(done, total)`` is called with 0 before the first frame and after every window;
    ``on_step(text)`` announces the steps after the frames are separated ("writing preview");
    ``on_layers(start, layers)`` receives every finished chunk of all N layers, in output order
    (again from the start if the pass runs twice),
    before encoding (``[N, C, t, h, w]`` floats, not clamped, at the processing size; videos only).

    Raises:
        CentrifugeError: the input cannot be read, the window does not fit in memory, the results
        exist (without ``force``), another run is writing them, or they cannot be written (one line
        naming the folder and the cause: read-only, full disk...).
    """
    input_path = Path(input_path)
    reader = VideoReader(input_path)
    native = (reader.info.height, reader.info.width)
    plan = separator.plan(*native)
    reader.shape = plan.process  # windows are decoded at the processing size
    # a residual model's differences are added to the full-size input as the layers are encoded
    detail = plan.output != plan.process and not is_still(input_path)
    if detail:
        separator = at_processing_size(separator, plan.process)
    n, limit = separator.n_outputs, options.memory_limit
    if is_still(input_path):  # one frame, whose layers come back at the image's own size
        check_window_memory(input_path, native, clip_len=1, overlap=0, n_outputs=n, limit=limit)
    else:
        clip_len, overlap = plan_window(
            input_path,
            reader.shape,
            clip_len=separator.clip_len,
            overlap=separator.overlap,
            n_outputs=n,
            limit=limit,
            tile=separator.tile,
            full_shape=native if detail else None,
        )
        if (clip_len, overlap) != (separator.clip_len, separator.overlap):
            separator = copy.copy(separator)  # shorter windows for this input only
            separator.clip_len, separator.overlap = clip_len, overlap
    with staged_result(out_dir, result_name(input_path), options.force) as (stage, work):
        if progress is not None:
            progress(0, reader.info.frames)
        return _separate_into(
            separator,
            reader,
            plan,
            stage,
            work,
            options,
            model_name,
            progress,
            on_step,
            on_layers,
            detail,
        )


def _separate_into(
    separator: Separator,
    reader: VideoReader,
    plan: SizePlan,
    stage: Path,
    work: Path,
    options: SeparateOptions,
    model_name: str,
    progress: Callable[[int, int], None] | None,
    on_step: Callable[[str], None] | None,
    on_layers: Callable[[int, torch.Tensor], None] | None,
    detail: bool = False,
) -> dict:
    """Write the layers, preview, contact sheet and report of ``reader``'s input into ``stage``."""
    started = time.monotonic()
    info = reader.info
    n = separator.n_outputs
    still = is_still(reader.path)
    paths = result_files(stage, layer_count(n, options.layers), still)
    if still:
        chosen, stats = separate_still(
            separator, reader.path, paths["layers"], paths["contact"], options.layers
        )
        done = 1
        if progress is not None:
            progress(1, 1)
    else:
        run = SeparationPass(separator, reader, work, options.layers, progress, on_layers, detail)
        chosen, stats, done, contact = run()
        final = stats.choose(options.layers)
        if final != chosen:  # the first window's choice did not hold for the whole video
            if on_step is not None:
                on_step("layers chosen again: separating again")
            chosen, stats, done, contact = run(choice=final)
        for src, dst in zip(run.layer_files, paths["layers"]):
            os.replace(src, dst)
        os.replace(run.preview_file, paths["preview"])
        if on_step is not None:
            on_step("writing contact sheet")
        write_contact_sheet(contact, paths["contact"])
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
            "size": plan.side,
            "clip_len": separator.clip_len,
            "overlap": separator.overlap,
            "tile": separator.tile,
        },
        seconds=time.monotonic() - started,
        extra={"fps_source": info.rate_source, "source": source_notes(info)},
    )
    write_report(report, paths["report"])
    return report


def separate_inputs(
    separator: Separator,
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: SeparateOptions = SeparateOptions(),
    *,
    model_name: str = "custom",
    progress: Callable[[str, int, int], None] | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[str, dict | CentrifugeError]]:
    """Separate several videos; yields ``(input, report)`` or ``(input, error)`` for each, so that a
    failing input never stops the others. Two inputs whose names map to the same result folder
    (:func:`~centrifuge.inference.results.result_name`) would share it: the second one is reported
    as an error instead.
    """
    stems: dict[str, str] = {}
    for path in map(str, inputs):
        first = stems.setdefault(result_name(path), path)
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
