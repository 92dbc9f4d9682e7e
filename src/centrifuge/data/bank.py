"""Clip bank: every frame of a (small) dataset decoded once into one uint8 memory-mapped file.

Training on a CPU is otherwise decode-bound (H.264 decoding of a 32-frame window costs about as much
as a training step of the tiny model). The bank stores each video at the training short side
(``ClipSpec.short_side``) as uint8 ``[T, H, W, 3]`` regions of a flat file in the user's cache
folder, keyed by the videos (path, size, mtime) and the short side, so it is built once per dataset
and resolution. Cutting a clip is then a slice. :meth:`ClipBank.to` moves the whole bank to a device
(e.g. a GPU) so that clips are cut there with no host transfer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from centrifuge.data.index import VideoEntry
from centrifuge.utils import atomic_path, cache_dir
from centrifuge.video.read import VideoReader, resized_shape

log = logging.getLogger(__name__)

BANK_VERSION = 1

__all__ = ["ClipBank", "build_bank"]


def _bank_key(entries: list[VideoEntry], short_side: int) -> str:
    h = hashlib.sha1(f"v{BANK_VERSION}:{short_side}".encode())
    for e in entries:
        h.update(f"{e.path}:{e.size_bytes}:{e.mtime}:{e.frames}".encode())
    return h.hexdigest()[:16]


def _fill(
    data: np.memmap,
    entries: list[VideoEntry],
    shapes: list[tuple[int, int, int]],
    offsets: np.ndarray,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Decode every video into its region of the bank (uint8 ``[T, H, W, 3]`` each)."""
    for i, (entry, (t, h, w)) in enumerate(zip(entries, shapes)):
        region = data[offsets[i] : offsets[i + 1]].reshape(t, h, w, 3)
        count = 0
        for count, frame in enumerate(VideoReader(entry.path, shape=(h, w)).frames(), start=1):
            if count > t:
                break
            region[count - 1] = frame.mul(255).round_().to(torch.uint8).permute(1, 2, 0).numpy()
        if 0 < count < t:  # fewer decodable frames than indexed: repeat the last one
            region[count:] = region[count - 1]
        if progress is not None:
            progress(i + 1, len(entries))
    data.flush()


def build_bank(
    entries: list[VideoEntry],
    short_side: int,
    *,
    folder: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Decode ``entries`` at ``short_side`` into a bank file (reusing an existing one); returns its
    metadata path. ``progress(done, total)`` is called after each video."""
    folder = Path(folder) if folder is not None else cache_dir("banks")
    folder.mkdir(parents=True, exist_ok=True)
    key = _bank_key(entries, short_side)
    meta_path = folder / f"bank-{key}.json"
    if meta_path.exists():
        return meta_path
    shapes = [(e.frames, *resized_shape(e.height, e.width, short_side)) for e in entries]
    sizes = [t * h * w * 3 for t, h, w in shapes]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    data_path = folder / f"bank-{key}.u8"
    # a private temporary file: processes building the same bank at once never share one
    with atomic_path(data_path) as tmp:
        _fill(
            np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(max(1, int(offsets[-1])),)),
            entries,
            shapes,
            offsets,
            progress,
        )
    meta = {
        "version": BANK_VERSION,
        "short_side": short_side,
        "data": data_path.name,
        "videos": [
            {
                "path": e.path,
                "label": e.label,
                "frames": t,
                "height": h,
                "width": w,
                "fps": e.fps,
                "offset": int(o),
            }
            for e, (t, h, w), o in zip(entries, shapes, offsets[:-1])
        ],
    }
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta))
    log.info("built clip bank %s (%.1f MB)", data_path, offsets[-1] / 1e6)
    return meta_path


class ClipBank:
    """A :class:`~centrifuge.data.folder.ClipSource` backed by a bank file (or device memory).

    Args:
        meta_path: the JSON written by :func:`build_bank`.
    """

    def __init__(self, meta_path: str | os.PathLike) -> None:
        meta_path = Path(meta_path)
        meta = json.loads(meta_path.read_text())
        self.short_side = int(meta["short_side"])
        self._videos = meta["videos"]
        self.entries = [
            VideoEntry(
                v["path"], v["frames"], v["fps"], v["width"], v["height"], v["label"], 0, 0.0
            )
            for v in self._videos
        ]
        mm = np.memmap(meta_path.parent / meta["data"], dtype=np.uint8, mode="c")
        self.data = torch.from_numpy(mm)  # flat uint8, shares the mapping

    @classmethod
    def from_entries(cls, entries: list[VideoEntry], short_side: int, **kwargs) -> ClipBank:
        """Build (or reuse) the bank of ``entries`` and open it."""
        return cls(build_bank(entries, short_side, **kwargs))

    @property
    def nbytes(self) -> int:
        return int(self.data.numel())

    def to(self, device: torch.device | str) -> ClipBank:
        """Hold the whole bank in ``device`` memory (clips are then cut on that device)."""
        self.data = self.data.to(device)
        return self

    def read_batch(
        self,
        videos: list[int],
        frames: torch.Tensor,
        tops: list[int],
        lefts: list[int],
        size: int,
        flips: list[bool],
    ) -> torch.Tensor:
        """Cut B clips with one gather (for GPUs): float ``[B, C, T, size, size]`` in ``[0, 1]``.

        Args:
            videos: B video indices; frames: int64 ``[B, T]`` frame indices; tops, lefts: crop
            corners; flips: left-right flips.
        """
        dev = self.data.device
        meta = torch.tensor(
            [
                [
                    self._videos[v]["offset"],
                    self._videos[v]["height"],
                    self._videos[v]["width"],
                    top,
                    left,
                ]
                for v, top, left in zip(videos, tops, lefts)
            ],
            dtype=torch.long,
            device=dev,
        )  # [B, 5]
        off, h, w, top, left = (meta[:, i].reshape(-1, 1, 1, 1, 1) for i in range(5))
        f = frames.to(dev).reshape(len(videos), -1, 1, 1, 1)  # [B, T, 1, 1, 1]
        y = torch.arange(size, device=dev).reshape(1, 1, size, 1, 1)
        x = torch.arange(size, device=dev).reshape(1, 1, 1, size, 1)
        flip = torch.tensor(flips, device=dev).reshape(-1, 1, 1, 1, 1)
        x = torch.where(flip, size - 1 - x, x)  # [B, 1, 1, S, 1]
        c = torch.arange(3, device=dev).reshape(1, 1, 1, 1, 3)
        index = off + ((f * h + top + y) * w + left + x) * 3 + c  # [B, T, S, S, 3]
        clips = self.data[index]
        return clips.permute(0, 4, 1, 2, 3).float().div_(255.0)  # [B, C, T, S, S]

    def video_shape(self, video: int) -> tuple[int, int, int]:
        v = self._videos[video]
        return v["frames"], v["height"], v["width"]

    def read(
        self, video: int, frames: torch.Tensor, top: int, left: int, size: int
    ) -> torch.Tensor:
        """float ``[C, T, size, size]`` in ``[0, 1]`` on the bank's device."""
        v = self._videos[video]
        t, h, w = v["frames"], v["height"], v["width"]
        region = self.data[v["offset"] : v["offset"] + t * h * w * 3].view(t, h, w, 3)
        window = region[:, top : top + size, left : left + size]  # a view: nothing copied yet
        step = int(frames[1] - frames[0]) if len(frames) > 1 else 1
        first = int(frames[0])
        if step > 0 and torch.equal(frames, torch.arange(first, first + step * len(frames), step)):
            clip = window[first : first + step * len(frames) : step]  # plain slice, no gather
        else:
            clip = window[frames.to(self.data.device)]
        return clip.permute(3, 0, 1, 2).float().div_(255.0)  # [C, T, S, S]
