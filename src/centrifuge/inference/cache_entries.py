"""Entries of derived files in the user's cache: written atomically, checked when read, pruned.

An entry is a few files ``<stem><suffix>`` in one folder plus ``<stem>.json``, the manifest of
their SHA-256 sums, written last: an entry exists once its manifest does, and an entry whose files
do not match it (a killed writer, a damaged disk, two writers at once) reads as missing, so the
caller rebuilds it. Nothing here is unpickled or executed. Only the
:data:`MAX_ENTRIES` most recently used entries are kept.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from centrifuge.utils import atomic_path

__all__ = ["MAX_ENTRIES", "load_entry", "prune", "save_entry"]

log = logging.getLogger(__name__)

MAX_ENTRIES = 16  # per folder; the engine's are ~20 MB each for `small`
STALE_TEMP_SECONDS = 24 * 3600  # temporary files older than this were left by a killed process


def save_entry(folder: Path, stem: str, files: dict[str, bytes]) -> None:
    """Write ``<stem><suffix>`` for each of ``files`` (suffix -> bytes), then the manifest, then
    prune the folder. A folder that cannot be written is logged and skipped, never an error."""
    try:
        manifest = {}
        for suffix, data in files.items():
            with atomic_path(folder / f"{stem}{suffix}") as tmp:
                tmp.write_bytes(data)
            manifest[suffix] = hashlib.sha256(data).hexdigest()
        with atomic_path(folder / f"{stem}.json") as tmp:
            tmp.write_text(json.dumps(manifest, indent=1))
    except OSError as exc:
        log.warning("cache entry %s not written: %s", folder / stem, exc)
    prune(folder)


def load_entry(folder: Path, stem: str, suffixes: tuple[str, ...]) -> dict[str, bytes] | None:
    """The files of an entry (suffix -> bytes) when all of them match its manifest, else ``None``
    (missing or damaged: rebuild it). Marks the entry as used."""
    try:
        manifest = json.loads((folder / f"{stem}.json").read_text())
        files = {s: (folder / f"{stem}{s}").read_bytes() for s in suffixes}
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    for suffix, data in files.items():
        if manifest.get(suffix) != hashlib.sha256(data).hexdigest():
            log.info("cache entry %s is damaged: rebuilding it", folder / stem)
            return None
    with contextlib.suppress(OSError):  # used now: the last to be pruned
        os.utime(folder / f"{stem}.json")
    return files


def prune(folder: Path, keep: int | None = None) -> None:
    """Keep the ``keep`` (default :data:`MAX_ENTRIES`) most recently used entries of ``folder``
    and remove temporary files that killed processes left there."""
    keep = MAX_ENTRIES if keep is None else keep
    with contextlib.suppress(OSError):
        manifests = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for manifest in manifests[keep:]:
            for path in folder.glob(f"{glob.escape(manifest.stem)}.*"):
                path.unlink(missing_ok=True)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for path in folder.glob(".*"):
            if path.stat().st_mtime >= cutoff:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
