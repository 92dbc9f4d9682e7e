"""Recursive scan of a folder of videos into a cached index of (file, frames, fps, size, label).

Kinetics layout (``root/<class>/<video>.mp4``) gives each video its parent folder as a label; videos
directly in ``root`` have no label. Folders of numbered images count as one video each. The index is
cached as JSON in the user's cache folder (never beside the data), keyed by the folder's absolute
path and validated by each file's size and modification time, so a second scan of an unchanged
folder decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from centrifuge.errors import CentrifugeError, DataError
from centrifuge.utils import atomic_path, cache_dir
from centrifuge.video.read import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, probe_video

log = logging.getLogger(__name__)

INDEX_VERSION = 1


@dataclass(frozen=True)
class VideoEntry:
    """One indexed video. ``path`` is absolute; ``label`` is the class folder or ``None``."""

    path: str
    frames: int
    fps: float
    width: int
    height: int
    label: str | None
    size_bytes: int
    mtime: float


def _stat_key(path: Path) -> tuple[int, float]:
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        return len(files), max((p.stat().st_mtime for p in files), default=0.0)
    st = path.stat()
    return st.st_size, st.st_mtime


def is_frame_sequence(names: list[str]) -> bool:
    """Whether image file names are numbered frames of one video (``frame_001.png``,
    ``frame_002.png``, ...): the same name once the digits are taken out, and digits in all."""
    patterns = {re.sub(r"\d+", "#", n) for n in names}
    return len(patterns) == 1 and "#" in next(iter(patterns))


def find_videos(root: str | os.PathLike) -> list[Path]:
    """Video files, image-sequence folders and single images under ``root`` (recursive, sorted).

    A folder of numbered frames counts as one video; other images count as one-frame videos.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder of videos.")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = sorted(filenames)
        found += [Path(dirpath) / n for n in names if Path(n).suffix.lower() in VIDEO_EXTENSIONS]
        images = [n for n in names if Path(n).suffix.lower() in IMAGE_EXTENSIONS]
        if len(images) >= 2 and Path(dirpath) != root and is_frame_sequence(images):
            found.append(Path(dirpath))  # a folder of numbered frames is one video
        else:
            found += [Path(dirpath) / n for n in images]  # separate stills: each one a video
    return sorted(found)


def _label(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root)
    parents = rel.parts[:-1]
    if path.is_dir():  # an image folder: its own parent is the class
        return parents[-1] if parents else None
    return parents[0] if parents else None


def _cache_file(root: Path) -> Path:
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir("index") / f"{root.name or 'root'}-{digest}.json"


def scan_folder(
    root: str | os.PathLike, *, use_cache: bool = True, min_frames: int = 1
) -> list[VideoEntry]:
    """Index every readable video under ``root``; unreadable files are skipped with a warning.

    Raises:
        DataError: the folder does not exist or holds no readable video.
    """
    root = Path(root).resolve()
    paths = find_videos(root)
    cache_path = _cache_file(root)
    cached: dict[str, dict] = {}
    if use_cache and cache_path.exists():
        try:
            data = json.loads(cache_path.read_text())
            if data.get("version") == INDEX_VERSION:
                cached = {e["path"]: e for e in data["entries"]}
        except (OSError, ValueError, KeyError):
            cached = {}
    entries: list[VideoEntry] = []
    changed = False
    for path in paths:
        size, mtime = _stat_key(path)
        hit = cached.get(str(path))
        if hit and hit["size_bytes"] == size and hit["mtime"] == mtime:
            entries.append(VideoEntry(**hit))
            continue
        changed = True
        try:
            info = probe_video(path)
        except CentrifugeError as exc:
            log.warning("skipping %s", exc)
            continue
        entries.append(
            VideoEntry(
                str(path),
                info.frames,
                info.fps,
                info.width,
                info.height,
                _label(path, root),
                size,
                mtime,
            )
        )
    if changed or len(cached) != len(entries):
        with atomic_path(cache_path) as tmp:
            tmp.write_text(
                json.dumps(
                    {
                        "version": INDEX_VERSION,
                        "root": str(root),
                        "entries": [asdict(e) for e in entries],
                    }
                )
            )
    entries = [e for e in entries if e.frames >= min_frames]
    if not entries:
        raise DataError(f"{root}: no readable video found.")
    return entries
