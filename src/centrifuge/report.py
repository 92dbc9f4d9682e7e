"""What ``centrifuge separate`` measures about the layers it writes, and its ``report.json``.

:class:`LayerStats` keeps running sums over the video (the paper's loss between each output and the
input and between outputs, mean brightness), :meth:`LayerStats.choose` decides which outputs become
``layer_1 … layer_M``, and :func:`build_report` turns one separation into the JSON-ready report.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from centrifuge.losses.pairwise import video_loss
from centrifuge.losses.pit import most_dissimilar_pair
from centrifuge.utils import atomic_path
from centrifuge.video.transforms import shrink

__all__ = ["STATS_SIDE", "LayerStats", "build_report", "write_report"]

STATS_SIDE = 96  # statistics are computed on frames resized to this short side


class LayerStats:
    """Running sums over the video, per output ``i`` of the model (per-frame weighted):
    ``l(O_i, V)`` to the input, ``l(O_i, O_j)`` between outputs, and mean brightness.

    ``every``: measure only frames whose index is a multiple of it (the statistics of a video
    change slowly; ``bench/choice.py`` checks that the chosen layers do not change).
    """

    def __init__(self, n: int, every: int = 1) -> None:
        self.every = every
        self.to_input = torch.zeros(n, dtype=torch.float64)
        self.between = torch.zeros(n, n, dtype=torch.float64)
        self.brightness = torch.zeros(n, dtype=torch.float64)
        self.input_brightness = 0.0
        self.frames = 0

    def add(self, layers: torch.Tensor, frames: torch.Tensor, start: int = 0) -> None:
        """layers ``[N, C, t, H, W]``, frames ``[C, t, H, W]`` of frames ``start, start + 1, ...``
        (compared at a short side of 96)."""
        if self.every > 1:
            first = -start % self.every
            layers, frames = layers[:, :, first :: self.every], frames[:, first :: self.every]
        t = frames.shape[1]
        if t == 0:
            return
        layers, frames = shrink(layers, STATS_SIDE), shrink(frames, STATS_SIDE)
        self.to_input += video_loss(layers, frames[None]).double() * t
        i, j = torch.triu_indices(len(layers), len(layers), offset=1)  # each pair once
        pair = video_loss(layers[i], layers[j]).double() * t
        self.between[i, j] += pair
        self.between[j, i] += pair
        self.brightness += layers.clamp(0, 1).mean(dim=(1, 2, 3, 4)).double() * t
        self.input_brightness += float(frames.mean()) * t
        self.frames += t

    def choose(self, which: str) -> list[int]:
        """Output indices to write as ``layer_1, layer_2, …``.

        ``layer_1`` and ``layer_2`` are always the two most dissimilar outputs (paper Sec. 3.2),
        the one closer to the input first; with ``which == "all"`` the other outputs follow, by
        closeness to the input. So ``layer_1``/``layer_2`` name the same layers in both modes.
        """
        n = len(self.to_input)
        pair = sorted(most_dissimilar_pair(self.between[None])[0].tolist(), key=self._closeness)
        if which != "all":
            return pair
        return pair + sorted(set(range(n)) - set(pair), key=self._closeness)

    def _closeness(self, i: int) -> float:
        return float(self.to_input[i])

    def layer(self, i: int) -> dict:
        """Statistics of output ``i``: its mean brightness in ``[0, 1]`` and its paper loss to the
        input (mean per frame; 0 means the layer is the input itself)."""
        frames = max(self.frames, 1)
        return {
            "mean_brightness": round(float(self.brightness[i]) / frames, 4),
            "difference_to_input": round(float(self.to_input[i]) / frames, 4),
        }


def build_report(
    *,
    input_path: Path,
    model_name: str,
    device: str,
    frames: int,
    fps: float,
    shape: tuple[int, int],
    n_outputs: int,
    layer_files: list[Path],
    chosen: list[int],
    stats: LayerStats,
    preview: Path | None,
    contact: Path,
    settings: dict,
    seconds: float,
    extra: dict | None = None,
) -> dict:
    """The report of one separation: DESIGN's keys first, then ``extra``, settings, version and
    statistics."""
    from centrifuge import __version__

    return {
        "input": str(input_path),
        "model": model_name,
        "device": device,
        "frames": frames,
        "fps": fps,
        "width": shape[1],
        "height": shape[0],
        "n_outputs": n_outputs,
        "layers": [
            {"file": p.name, "index": int(i), **stats.layer(i)} for p, i in zip(layer_files, chosen)
        ],
        "preview": preview.name if preview is not None else None,
        "contact_sheet": contact.name,
        "seconds": round(seconds, 3),
        **(extra or {}),
        "input_mean_brightness": round(stats.input_brightness / max(stats.frames, 1), 4),
        "settings": settings,
        "version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(report: dict, path: str | os.PathLike) -> Path:
    """Write ``report`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return Path(path)
