"""What ``centrifuge separate`` measures about the layers it writes, and its ``report.json``.

:class:`LayerStats` keeps running sums over the video (the paper's loss between each candidate
layer and the input, between the two halves of each candidate grouping, mean brightness),
:meth:`LayerStats.choose` decides which groups of outputs become ``layer_1 … layer_M`` (a layer is
the mean of its group, :func:`~centrifuge.losses.grouping.compose`), :func:`written_layers` makes
the layers ``separate`` would write for a batch of clips (what ``centrifuge evaluate`` scores as
"written"), and :func:`build_report` turns one separation into the JSON-ready report.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import torch

from centrifuge.losses.grouping import Group, balanced_bipartitions, compose, groups_of, singles
from centrifuge.losses.pairwise import video_loss
from centrifuge.utils import atomic_path
from centrifuge.version import __version__
from centrifuge.video.transforms import shrink

__all__ = [
    "STATS_EVERY",
    "STATS_SIDE",
    "LayerStats",
    "build_report",
    "layer_count",
    "write_report",
    "written_layers",
]

STATS_SIDE = 96  # statistics and layer order are computed on frames resized to this short side
STATS_EVERY = 4  # ... of every 4th frame (bench/choice.py: the same layers chosen)


def layer_count(n: int, which: str) -> int:
    """How many layers ``--layers which`` writes for a model of ``n`` outputs: 2, or for ``all``
    the two written layers and then every output not already one of them."""
    if which != "all":
        return 2
    written_singles = {2: 2, 3: 1}.get(n, 0)  # outputs that already are a written layer alone
    return 2 + n - written_singles


class LayerStats:
    """Running sums over the video (per-frame weighted), for each group of outputs ``g`` of
    :func:`~centrifuge.losses.grouping.groups_of` (its mean is a candidate layer): ``l(g, V)`` to
    the input and mean brightness; and for each balanced bipartition ``(A, B)`` the paper's loss
    between the means of its halves, ``l(A, B)``.

    ``every``: measure only frames whose index is a multiple of it (the statistics of a video
    change slowly; ``bench/choice.py`` checks that the chosen layers do not change).
    """

    def __init__(self, n: int, every: int = 1) -> None:
        self.n, self.every = n, every
        self.splits = balanced_bipartitions(n)
        self.groups = groups_of(n)
        self._slot = {g: k for k, g in enumerate(self.groups)}
        self._halves = torch.tensor([[self._slot[a], self._slot[b]] for a, b in self.splits])
        self.to_input = torch.zeros(len(self.groups), dtype=torch.float64)
        self.brightness = torch.zeros(len(self.groups), dtype=torch.float64)
        self.separation = torch.zeros(len(self.splits), dtype=torch.float64)
        self.input_brightness = 0.0
        self.frames = 0

    def add(self, layers: torch.Tensor, frames: torch.Tensor, start: int = 0) -> None:
        """layers ``[N, C, t, H, W]``, frames ``[C, t, H, W]`` of frames ``start, start + 1, ...``
        (compared at a short side of :data:`STATS_SIDE`), floats in about ``[0, 1]``."""
        if self.every > 1:
            first = -start % self.every
            layers, frames = layers[:, :, first :: self.every], frames[:, first :: self.every]
        t = frames.shape[1]
        if t == 0:
            return
        layers, frames = shrink(layers.float(), STATS_SIDE), shrink(frames.float(), STATS_SIDE)
        means = compose(layers, self.groups)  # [G, C, t, h, w]
        self.to_input += video_loss(means, frames[None]).double() * t
        a, b = self._halves[:, 0], self._halves[:, 1]
        self.separation += video_loss(means[a], means[b]).double() * t
        self.brightness += means.clamp(0, 1).mean(dim=(1, 2, 3, 4)).double() * t
        self.input_brightness += float(frames.mean()) * t
        self.frames += t

    def choose(self, which: str) -> list[Group]:
        """The groups of outputs to write as ``layer_1, layer_2, …`` (each layer the mean of its
        group).

        ``layer_1`` and ``layer_2`` are always the two halves of the balanced bipartition whose
        means are farthest apart (the cluster means; for a 2-output model, the two outputs), the
        one closer to the input first. With ``which == "all"`` every output not already one of
        them follows on its own, by closeness to the input. So ``layer_1``/``layer_2`` name the
        same layers in both modes.
        """
        best = int(torch.argmax(self.separation))  # the first such split on a tie
        pair = sorted(self.splits[best], key=self._closeness)
        if which != "all":
            return pair
        rest = [g for g in singles(self.n) if g not in pair]
        return pair + sorted(rest, key=self._closeness)

    def _closeness(self, group: Group) -> float:
        return float(self.to_input[self._slot[group]])

    def layer(self, group: Group) -> dict:
        """Statistics of the layer made of ``group``: its mean brightness in ``[0, 1]`` and its
        paper loss to the input (mean per frame; 0 means the layer is the input itself)."""
        k, frames = self._slot[group], max(self.frames, 1)
        return {
            "mean_brightness": round(float(self.brightness[k]) / frames, 4),
            "difference_to_input": round(float(self.to_input[k]) / frames, 4),
        }


def written_layers(
    pred: torch.Tensor, mixture: torch.Tensor, *, every: int = STATS_EVERY
) -> torch.Tensor:
    """The two layers ``centrifuge separate`` would write for each clip, chosen by the same
    :class:`LayerStats` (without the answer), clamped to ``[0, 1]`` as the written files are.

    Shape: pred ``[B, N, C, T, H, W]``, mixture ``[B, C, T, H, W]`` -> ``[B, 2, C, T, H, W]``.
    """
    out = []
    for layers, frames in zip(pred, mixture):
        stats = LayerStats(layers.shape[0], every=every)
        stats.add(layers, frames)
        out.append(compose(layers, stats.choose("2")))
    return torch.stack(out).clamp(0, 1)


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
    chosen: list[Group],
    stats: LayerStats,
    preview: Path | None,
    contact: Path,
    settings: dict,
    seconds: float,
    extra: dict | None = None,
) -> dict:
    """The report of one separation: DESIGN's keys first, then ``extra``, settings, version and
    statistics. Each layer names the ``outputs`` it is the mean of; its ``index`` is the first
    of them (the output itself for a layer of one output)."""
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
            {"file": p.name, "index": g[0], "outputs": list(g), **stats.layer(g)}
            for p, g in zip(layer_files, chosen)
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
