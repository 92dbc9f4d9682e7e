"""Deterministic validation blends: the same folder, seed, clip length and size give the same clips.

Pairs of distinct videos and their start frames are drawn with NumPy's PCG64 from ``seed`` (stable
across platforms and versions); each clip is ``clip_len`` frames from its start, shortest side
resized to ``size``, centre ``size x size`` crop. Videos shorter than ``clip_len`` are bounced.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from centrifuge.data.blend import colour_layer
from centrifuge.data.index import VideoEntry, scan_folder
from centrifuge.errors import DataError
from centrifuge.video.clips import bounce_indices
from centrifuge.video.read import read_video
from centrifuge.video.transforms import center_crop

__all__ = [
    "VARIANTS",
    "PairSpec",
    "iter_pairs",
    "load_clip",
    "make_layers",
    "validation_layers",
    "validation_pairs",
]

VARIANTS = ("normal", "frozen", "one-frozen", "colour:NAME")


@dataclass(frozen=True)
class PairSpec:
    """Two videos (indices into the sorted entries) and the first frame of each clip."""

    video_a: int
    start_a: int
    video_b: int
    start_b: int


def validation_pairs(
    entries: list[VideoEntry], pairs: int, seed: int, clip_len: int, *, same_class: bool = False
) -> list[PairSpec]:
    """``pairs`` fixed pairs of distinct videos (same label each when ``same_class``)."""
    if len(entries) < 2:
        raise DataError("validation needs at least two videos.")
    rng = np.random.default_rng(seed)
    pools = [list(range(len(entries)))]
    if same_class:
        by_label: dict[str, list[int]] = {}
        for i, e in enumerate(entries):
            if e.label is not None:
                by_label.setdefault(e.label, []).append(i)
        pools = [v for _, v in sorted(by_label.items()) if len(v) >= 2]
        if not pools:
            raise DataError("same-class pairs need a labelled folder with two videos in a class.")
    out = []
    for _ in range(pairs):
        pool = pools[int(rng.integers(len(pools)))]
        a, b = (int(x) for x in rng.choice(pool, size=2, replace=False))
        starts = [int(rng.integers(0, max(1, entries[v].frames - clip_len + 1))) for v in (a, b)]
        out.append(PairSpec(a, starts[0], b, starts[1]))
    return out


def load_clip(entry: VideoEntry, start: int, clip_len: int, size: int) -> torch.Tensor:
    """``clip_len`` frames from ``start``, short side ``size``, centre crop: ``[C, T, S, S]``."""
    frames, _ = read_video(entry.path, start=start, num_frames=clip_len, size=size)
    if frames.shape[1] < clip_len:
        frames = frames[:, bounce_indices(frames.shape[1], clip_len)]
    return center_crop(frames, size)


def make_layers(a: torch.Tensor, b: torch.Tensor, variant: str) -> torch.Tensor:
    """The two ground-truth layers ``[2, C, T, H, W]`` of a validation pair for ``variant``:
    ``normal``, ``frozen`` (both clips frozen at their middle frame), ``one-frozen`` (the first one
    frozen) or ``colour:NAME`` (the second layer replaced by a pure colour)."""
    layers = torch.stack([a, b])
    middle = torch.full((2,), a.shape[1] // 2)
    if variant == "normal":
        return layers
    if variant == "frozen":
        return _freeze_at(layers, middle)
    if variant == "one-frozen":
        return torch.stack([_freeze_at(a[None], middle[:1])[0], b])
    if variant.startswith("colour:"):
        return torch.stack([a, colour_layer(variant.split(":", 1)[1], a)])
    raise DataError(f"unknown variant {variant!r}: choose from {', '.join(VARIANTS)}.")


def _freeze_at(clips: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    frame = clips[torch.arange(len(clips)), :, index]  # [N, C, H, W]
    return frame.unsqueeze(2).expand_as(clips).clone()


def iter_pairs(
    entries: list[VideoEntry], specs: list[PairSpec], clip_len: int, size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the two clips of each pair, ``([C, T, S, S], [C, T, S, S])``."""
    for p in specs:
        yield (
            load_clip(entries[p.video_a], p.start_a, clip_len, size),
            load_clip(entries[p.video_b], p.start_b, clip_len, size),
        )


def validation_layers(
    folder: str | os.PathLike, pairs: int, seed: int, clip_len: int, size: int
) -> torch.Tensor:
    """The layers of ``pairs`` fixed validation pairs of ``folder``, held compactly in memory:
    uint8 ``[P, 2, C, T, S, S]`` on the CPU (divide by 255 for the floats of :func:`iter_pairs`)."""
    entries = scan_folder(folder)
    specs = validation_pairs(entries, pairs, seed, clip_len)
    layers = [torch.stack([a, b]) for a, b in iter_pairs(entries, specs, clip_len, size)]
    return (torch.stack(layers) * 255).round().to(torch.uint8)
