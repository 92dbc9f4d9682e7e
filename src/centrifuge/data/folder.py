"""Random training clips from a folder of videos, decoded directly or served from a clip bank.

The paper's augmentation (Sec. 4): the shortest side is resized to ``scale x crop`` (1.15x), then a
random spatio-temporal ``clip_len x crop x crop`` crop is taken and flipped left-right with
probability 1/2. Videos shorter than a clip are played forward then backward (``bounce_indices``).

Sampling is stateless: clip number ``i`` is drawn from an RNG seeded with ``(seed, rank, i)``, so a
run resumed at step ``s`` reads exactly the clips it would have read, any worker can produce any
clip, and each distributed rank draws different clips.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from centrifuge.data.index import VideoEntry, scan_folder
from centrifuge.errors import DataError
from centrifuge.video.clips import bounce_indices
from centrifuge.video.read import read_video, resized_shape
from centrifuge.video.transforms import crop as crop_frames

__all__ = [
    "ClipSource",
    "ClipSpec",
    "RandomClips",
    "StreamSampler",
    "VideoFolder",
    "sample_rng",
]


@dataclass(frozen=True)
class ClipSpec:
    """Geometry of a training clip: ``clip_len`` frames (every ``stride``-th) of ``crop x crop``."""

    clip_len: int = 32
    crop: int = 112
    stride: int = 1
    scale: float = 1.15
    flip: bool = True

    @property
    def short_side(self) -> int:
        """Short side videos are resized to before cropping (``scale * crop``, rounded up)."""
        return math.ceil(self.scale * self.crop - 1e-9)


class ClipSource(Protocol):
    """Anything that holds videos at a fixed short side and can cut clips out of them."""

    entries: list[VideoEntry]

    def video_shape(self, video: int) -> tuple[int, int, int]:
        """``(T, H, W)`` of video ``video`` at the source's resolution."""

    def read(
        self, video: int, frames: torch.Tensor, top: int, left: int, size: int
    ) -> torch.Tensor:
        """Frames ``frames`` (int64 ``[T]``) cropped at ``(top, left)`` to ``size x size``:
        float ``[C, T, size, size]`` in ``[0, 1]``."""


def sample_rng(seed: int, rank: int, index: int) -> np.random.Generator:
    """The RNG of clip number ``index`` on ``rank``: independent of workers and of resumption."""
    return np.random.default_rng([seed, rank, index])


def draw_clip(
    rng: np.random.Generator, shape: tuple[int, int, int], spec: ClipSpec
) -> tuple[torch.Tensor, int, int, bool]:
    """Draw frame indices ``[clip_len]``, crop corner and flip for a ``(T, H, W)`` video."""
    t, h, w = shape
    span = (spec.clip_len - 1) * spec.stride + 1
    if t >= span:
        start = int(rng.integers(0, t - span + 1))
        frames = torch.arange(start, start + span, spec.stride)
    else:  # short video: bounce, starting at a random phase
        frames = bounce_indices(t, span, start=int(rng.integers(0, max(1, 2 * t - 2))))
        frames = frames[:: spec.stride]
    top = int(rng.integers(0, h - spec.crop + 1))
    left = int(rng.integers(0, w - spec.crop + 1))
    flip = bool(spec.flip and rng.random() < 0.5)
    return frames, top, left, flip


class VideoFolder:
    """A :class:`ClipSource` that decodes the videos of a folder on demand (PyAV, seeking).

    Args:
        root: folder scanned recursively (Kinetics layout gives labels).
        short_side: the shortest side clips are decoded at.
        entries: an already scanned index (skips the scan).
    """

    def __init__(
        self,
        root: str | os.PathLike | None,
        *,
        short_side: int,
        entries: list[VideoEntry] | None = None,
    ) -> None:
        self.entries = entries if entries is not None else scan_folder(root)
        self.short_side = short_side

    def video_shape(self, video: int) -> tuple[int, int, int]:
        e = self.entries[video]
        return (e.frames, *resized_shape(e.height, e.width, self.short_side))

    def read(
        self, video: int, frames: torch.Tensor, top: int, left: int, size: int
    ) -> torch.Tensor:
        entry = self.entries[video]
        lo, hi = int(frames.min()), int(frames.max())
        window, _ = read_video(entry.path, start=lo, num_frames=hi - lo + 1, size=self.short_side)
        # a damaged tail repeats its last frame
        index = (frames - lo).clamp_max(window.shape[1] - 1)
        return crop_frames(window[:, index], top, left, size, size)


class RandomClips(Dataset):
    """Map-style dataset: item ``i`` is a random clip ``[C, T, S, S]`` drawn with ``sample_rng``.

    Args:
        source: a :class:`VideoFolder` or :class:`~centrifuge.data.bank.ClipBank`.
        spec: clip geometry and augmentation.
        seed, rank: RNG stream (distinct per distributed rank).
        frozen: return frozen clips (one random frame of the clip repeated; paper Table 3).
        group: ``None`` yields single clips ``[C, T, S, S]`` (blend partners are drawn on the batch
            by ``make_mixtures``); ``K`` yields ``[K, C, T, S, S]`` clips of K distinct videos.
        same_class: with ``group``, draw the K videos from one label (the paper's same-class pairs).
        length: nominal length reported by ``len()`` (sampling is unbounded).
    """

    def __init__(
        self,
        source: ClipSource,
        spec: ClipSpec,
        *,
        seed: int = 0,
        rank: int = 0,
        frozen: bool = False,
        group: int | None = None,
        same_class: bool = False,
        length: int = 2**31 - 1,
    ) -> None:
        self.source, self.spec, self.seed, self.rank = source, spec, seed, rank
        self.frozen, self.group, self.length = frozen, group, length
        self.classes = same_class_groups(source.entries) if same_class else None
        if same_class and not self.classes:
            raise DataError("same-class pairs need a labelled folder (root/<class>/<video>).")
        if group is not None and group > len(source.entries):
            raise DataError(
                f"{group} distinct videos per item, but the folder has {len(source.entries)}."
            )

    def __len__(self) -> int:
        return self.length

    def _draw(self, rng: np.random.Generator, video: int) -> tuple[torch.Tensor, int, int, bool]:
        frames, top, left, flip = draw_clip(rng, self.source.video_shape(video), self.spec)
        if self.frozen:
            frames = frames[int(rng.integers(len(frames)))].repeat(len(frames))
        return frames, top, left, flip

    def _clip(self, rng: np.random.Generator, video: int) -> torch.Tensor:
        frames, top, left, flip = self._draw(rng, video)
        clip = self.source.read(video, frames, top, left, self.spec.crop)
        return clip.flip(-1) if flip else clip  # [C, T, S, S]

    def draw(self, index: int) -> tuple[int, torch.Tensor, int, int, bool]:
        """What single-clip item ``index`` is: ``(video, frames [T], top, left, flip)``."""
        rng = sample_rng(self.seed, self.rank, index)
        video = int(rng.integers(len(self.source.entries)))
        return (video, *self._draw(rng, video))

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = sample_rng(self.seed, self.rank, index)
        if self.group is None:
            return self._clip(rng, int(rng.integers(len(self.source.entries))))
        if self.classes is not None:
            names = sorted(self.classes)
            pool = self.classes[names[int(rng.integers(len(names)))]]
        else:
            pool = list(range(len(self.source.entries)))
        videos = rng.choice(pool, size=min(self.group, len(pool)), replace=False)
        return torch.stack([self._clip(rng, int(v)) for v in videos])  # [K, C, T, S, S]


class StreamSampler(Sampler[int]):
    """Indices ``start, start + 1, ...`` without end (or ``count`` of them): resumable streams."""

    def __init__(self, start: int = 0, count: int | None = None) -> None:
        self.start, self.count = start, count

    def __iter__(self):
        i = self.start
        while self.count is None or i < self.start + self.count:
            yield i
            i += 1

    def __len__(self) -> int:
        return self.count if self.count is not None else 2**31 - 1


def same_class_groups(entries: list[VideoEntry]) -> dict[str, list[int]]:
    """Video indices per label (labels with at least two videos only)."""
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        if e.label is not None:
            groups.setdefault(e.label, []).append(i)
    return {k: v for k, v in groups.items() if len(v) >= 2}
