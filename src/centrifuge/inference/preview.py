"""``preview.mp4`` (input | layers, labelled, side by side) and ``contact.png`` (frames sampled over
time, one row per stream) of a separated video, made in the same pass as the layers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from centrifuge.video.transforms import resize
from centrifuge.video.write import VideoWriter
from centrifuge.viz import image_grid, save_png

__all__ = ["PreviewWriter", "write_contact_sheet"]

PREVIEW_HEIGHT = 240  # height of each panel of preview.mp4
PREVIEW_WIDTH = 1920  # widest preview.mp4 (players and browsers take this everywhere)
MIN_ASPECT = 0.25  # a panel is at least a quarter as wide as it is high
CONTACT_COLUMNS = 6
CONTACT_HEIGHT = 120  # height of each contact-sheet cell
CONTACT_WIDTH = 320  # widest contact-sheet cell


def _labels(n_layers: int) -> list[str]:
    return ["input"] + [f"layer {i + 1}" for i in range(n_layers)]


def _label_strip(labels: list[str], width: int) -> torch.Tensor:
    """The labels above the preview's columns, ``[C, 16, width * len(labels)]`` in ``[0, 1]``."""
    strip = Image.new("RGB", (width * len(labels), 16), (20, 20, 20))
    draw = ImageDraw.Draw(strip)
    for i, label in enumerate(labels):
        draw.text((i * width + 4, 2), label, fill=(235, 235, 235))
    return torch.from_numpy(np.array(strip)).permute(2, 0, 1).float() / 255


class PreviewWriter:
    """Writes ``preview.mp4`` while the video is separated: the input and its layers side by side,
    at most :data:`PREVIEW_HEIGHT` high and :data:`PREVIEW_WIDTH` wide (panels of extreme aspect
    show the centre of the frames), labelled, with the input's audio; and keeps the frames of
    the contact sheet (:data:`CONTACT_COLUMNS` per stream, sampled evenly over ``frames``).

    Args:
        target: the preview file (appears on :meth:`close`).
        fps: frame rate.
        shape: ``(H, W)`` of the input video (the panels keep its aspect).
        n_layers: layers shown beside the input.
        frames: expected number of frames (where the contact sheet samples; the last frame seen
            fills the sheet when the video ends early).
        audio_from: the input file, whose audio is written in.
        audio_start: where in it the first frame is (seconds; see
            :class:`~centrifuge.video.write.VideoWriter`).
        preset: x264 preset (a preview is for looking, not for keeping: fast).
    """

    def __init__(
        self,
        target: Path,
        *,
        fps: Fraction | float,
        shape: tuple[int, int],
        n_layers: int,
        frames: int,
        audio_from: Path | None = None,
        audio_start: float | None = None,
        preset: str = "superfast",
    ) -> None:
        h, w = shape
        self.ph = max(2, min(PREVIEW_HEIGHT, h) // 2 * 2)
        self.pw = max(2, round(w * self.ph / h) // 2 * 2)
        # extreme aspect ratios (a 64x4000 strip, a 4000x64 banner): the panel's aspect is kept
        # within bounds and the frames cover it, cut to its centre, so it stays legible and the
        # whole preview stays within what players take
        widest = max(2, PREVIEW_WIDTH // (n_layers + 1) // 2 * 2)
        narrowest = min(widest, max(2, round(self.ph * MIN_ASPECT) // 2 * 2))
        clamped = min(max(self.pw, narrowest), widest)
        self.cover: tuple[int, int] | None = None  # resize to this, then cut the panel's centre
        if clamped != self.pw:
            self.pw = clamped
            scale = max(self.ph / h, self.pw / w)
            self.cover = (max(self.ph, round(h * scale)), max(self.pw, round(w * scale)))
        self.strip = _label_strip(_labels(n_layers), self.pw)
        self.picks = set(
            np.linspace(0, max(frames, 1) - 1, CONTACT_COLUMNS).round().astype(int).tolist()
        )
        self.contact: list[list[torch.Tensor]] = [[] for _ in range(n_layers + 1)]
        self.last: list[torch.Tensor] = []
        self.written = 0
        self.writer = VideoWriter(
            target,
            fps=fps,
            width=self.pw * (n_layers + 1),
            height=self.ph + self.strip.shape[1],
            audio_from=audio_from,
            audio_start=audio_start,
            preset=preset,
            threads=1,
            overwrite=True,  # a file of this program's own work folder (a second pass)
        )

    def write(self, frames: torch.Tensor, layers: torch.Tensor) -> None:
        """Append frames ``[C, t, h, w]`` and their layers ``[M, C, t, h, w]`` (any ``h, w``;
        floats, clipped to ``[0, 1]``, or uint8 as :func:`~centrifuge.video.write.quantize_frames`
        gives them)."""
        if layers.dtype == torch.uint8:
            layers = layers.float() / 255
        if self.cover is None:
            panels = resize(torch.cat([frames[None], layers]), self.ph, self.pw).clamp_(0, 1)
        else:
            big = resize(torch.cat([frames[None], layers]), *self.cover)
            top, left = (self.cover[0] - self.ph) // 2, (self.cover[1] - self.pw) // 2
            panels = big[..., top : top + self.ph, left : left + self.pw].clamp(0, 1)
        side_by_side = torch.cat(panels.unbind(0), dim=-1)  # [C, t, ph, pw * streams]
        strip = self.strip[:, None].expand(-1, side_by_side.shape[1], -1, -1)
        self.writer.write(torch.cat([strip, side_by_side], dim=-2))
        for t in range(panels.shape[2]):
            if self.written + t in self.picks:
                for cells, panel in zip(self.contact, panels):
                    cells.append(panel[:, t].clone())
        self.last = [panel[:, -1].clone() for panel in panels]
        self.written += panels.shape[2]

    def close(self) -> list[list[torch.Tensor]]:
        """Finish the file; returns the contact-sheet frames, per stream ``[C, h, w]`` floats."""
        self.writer.close()
        if self.last and len(self.contact[0]) < CONTACT_COLUMNS:  # the video ended early
            for cells, frame in zip(self.contact, self.last):
                cells.append(frame)
        return self.contact

    def abort(self) -> None:
        self.writer.abort()


def write_contact_sheet(contact: list[list[torch.Tensor]], target: Path) -> None:
    """``contact.png``: one labelled row per stream (input, layer 1, ...), as
    :class:`PreviewWriter` sampled them."""
    h, w = contact[0][0].shape[-2:]
    height = min(CONTACT_HEIGHT, max(16, CONTACT_WIDTH * h // w))  # wide frames: lower cells
    sheet = image_grid(contact, row_labels=_labels(len(contact) - 1), cell_height=height)
    save_png(sheet, target)
