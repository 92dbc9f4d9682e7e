"""Image grids for people: training samples and contact sheets (PNG via Pillow)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from centrifuge.utils import atomic_path

__all__ = ["image_grid", "save_png", "to_image"]

_LABEL_H = 14


def to_image(frame: torch.Tensor) -> Image.Image:
    """float ``[C, H, W]`` in ``[0, 1]`` -> RGB image."""
    data = frame.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(np.ascontiguousarray(data.permute(1, 2, 0).cpu().numpy()), "RGB")


def image_grid(
    rows: Sequence[Sequence[torch.Tensor]],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell_height: int | None = None,
    gap: int = 2,
) -> Image.Image:
    """A grid of frames: ``rows[r][c]`` is float ``[C, H, W]`` in ``[0, 1]``.

    Cells are resized to ``cell_height`` (aspect kept; default: the first frame's height); labels
    are drawn above each column and at the left of each row.
    """
    first = rows[0][0]
    h0, w0 = first.shape[-2:]
    cell_h = cell_height or h0
    cell_w = max(1, round(w0 * cell_h / h0))
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    left = 0
    if row_labels:
        left = 7 * max(len(s) for s in row_labels) + 6
    top = _LABEL_H if col_labels else 0
    canvas = Image.new(
        "RGB", (left + n_cols * (cell_w + gap), top + n_rows * (cell_h + gap)), (24, 24, 24)
    )
    draw = ImageDraw.Draw(canvas)
    for c, label in enumerate(col_labels or []):
        draw.text((left + c * (cell_w + gap) + 2, 1), label, fill=(230, 230, 230))
    for r, row in enumerate(rows):
        y = top + r * (cell_h + gap)
        if row_labels:
            draw.text((3, y + cell_h // 2 - 5), row_labels[r], fill=(230, 230, 230))
        for c, frame in enumerate(row):
            image = to_image(frame).resize((cell_w, cell_h), Image.Resampling.BILINEAR)
            canvas.paste(image, (left + c * (cell_w + gap), y))
    return canvas


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save atomically (temporary file + rename), at zlib's default level: ``optimize=True`` took
    2.8x as long for a 1.4% smaller contact sheet (760 vs 268 ms at 1172x730)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
