"""``preview.mp4`` (input | layers, labelled, side by side) and ``contact.png`` (frames sampled over
time, one row per stream) of a separated video, from the files already written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from centrifuge.video.read import VideoReader
from centrifuge.video.write import VideoWriter
from centrifuge.viz import image_grid, save_png

__all__ = ["write_contact_sheet", "write_preview"]

PREVIEW_HEIGHT = 240  # height of each panel of preview.mp4
CONTACT_COLUMNS = 6
CONTACT_HEIGHT = 120  # height of each contact-sheet cell


def _labels(n_layers: int) -> list[str]:
    return ["input"] + [f"layer {i + 1}" for i in range(n_layers)]


def _label_strip(labels: list[str], width: int) -> torch.Tensor:
    """The labels above the preview's columns, ``[C, 16, width * len(labels)]`` in ``[0, 1]``."""
    strip = Image.new("RGB", (width * len(labels), 16), (20, 20, 20))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((i * width + 4, 2), label, fill=(235, 235, 235))
    return torch.from_numpy(np.array(strip)).permute(2, 0, 1).float() / 255


def write_preview(
    input_path: Path,
    layer_files: list[Path],
    target: Path,
    fps: Fraction | float,
    shape: tuple[int, int],
    frames: int,
) -> list[list[torch.Tensor]]:
    """Write ``target``: the input and its layers (``frames`` of each, ``shape = (H, W)``) side by
    side at most :data:`PREVIEW_HEIGHT` high, with the input's audio.

    Returns the contact-sheet frames: per stream, :data:`CONTACT_COLUMNS` frames ``[C, h, w]``
    floats in ``[0, 1]`` sampled evenly over time.
    """
    h, w = shape
    ph = min(PREVIEW_HEIGHT, h) // 2 * 2
    pw = max(2, round(w * ph / h) // 2 * 2)
    strip = _label_strip(_labels(len(layer_files)), pw)
    readers = [VideoReader(p, shape=(ph, pw)).frames() for p in [input_path, *layer_files]]
    picks = set(np.linspace(0, frames - 1, CONTACT_COLUMNS).round().astype(int).tolist())
    contact: list[list[torch.Tensor]] = [[] for _ in readers]
    writer = VideoWriter(
        target, fps=fps, width=pw * len(readers), height=ph + strip.shape[1], audio_from=input_path
    )
    try:
        for t, row in enumerate(zip(*readers)):
            side_by_side = torch.cat(row, dim=-1)  # [C, ph, pw * streams]
            writer.write(torch.cat([strip, side_by_side], dim=-2)[:, None])
            if t in picks:
                for cells, f in zip(contact, row):
                    cells.append(f)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return contact


def write_contact_sheet(contact: list[list[torch.Tensor]], target: Path) -> None:
    """``contact.png``: one labelled row per stream (input, layer 1, ...), as
    :func:`write_preview` sampled them."""
    sheet = image_grid(contact, row_labels=_labels(len(contact) - 1), cell_height=CONTACT_HEIGHT)
    save_png(sheet, target)
