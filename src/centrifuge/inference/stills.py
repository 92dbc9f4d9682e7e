"""Still images in ``centrifuge separate``: PNG layers and a still-sized contact sheet.

A single image file (``.png``, ``.jpg``, …) is separated as a one-frame clip (the model pads time
itself) and written as ``layer_1.png … layer_M.png`` at the image's own size, beside
``contact.png``: the input and the layers side by side, large enough to read. A folder of numbered
images is a video, not a still: it gives MP4 layers like any other video.
"""

from __future__ import annotations

import os
from pathlib import Path

from centrifuge.inference.report import LayerStats
from centrifuge.inference.separator import Separator
from centrifuge.losses.grouping import Group, compose
from centrifuge.video.read import IMAGE_EXTENSIONS, read_video
from centrifuge.viz import image_grid, save_png, to_image

__all__ = ["STILL_CELL_HEIGHT", "is_still", "separate_still"]

STILL_CELL_HEIGHT = (160, 480)  # each picture of a still's contact sheet: at least / at most


def is_still(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a single image file (not a video, not a folder of frames)."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def separate_still(
    separator: Separator,
    path: Path,
    layer_files: list[Path],
    contact: Path,
    which: str,
) -> tuple[list[Group], LayerStats]:
    """Separate the image ``path``; write the chosen layers as PNGs (at the image's own size, also
    with ``separator.size``) and the contact sheet.

    Returns the chosen groups of outputs (in ``layer_files`` order; each layer is the mean of its
    group) and the layer statistics.
    """
    frames, _ = read_video(path)  # [C, 1, H, W], native size
    layers = separator.window(frames).float().cpu()  # [N, C, 1, H, W]
    stats = LayerStats(len(layers))
    stats.add(layers, frames)
    chosen = stats.choose(which)
    written = compose(layers, chosen)  # [M, C, 1, H, W]
    for layer, target in zip(written, layer_files):
        save_png(to_image(layer[:, 0]), target)
    low, high = STILL_CELL_HEIGHT
    sheet = image_grid(
        [[frames[:, 0], *(layer[:, 0] for layer in written)]],
        col_labels=["input"] + [f"layer {k + 1}" for k in range(len(chosen))],
        cell_height=min(max(frames.shape[-2], low), high),
    )
    save_png(sheet, contact)
    return chosen, stats
