"""Cache entries: whole or missing, never damaged; the least recently used are pruned."""

from __future__ import annotations

import os
import time
from pathlib import Path

from centrifuge.inference.cache_entries import load_entry, prune, save_entry

FILES = {".xml": b"<net/>", ".bin": bytes(range(256)) * 4}


def test_a_saved_entry_loads_back(tmp_path: Path) -> None:
    save_entry(tmp_path, "model-1x3", FILES)
    assert load_entry(tmp_path, "model-1x3", (".xml", ".bin")) == FILES
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model-1x3.bin",
        "model-1x3.json",
        "model-1x3.xml",
    ]


def test_missing_or_damaged_entries_read_as_missing(tmp_path: Path) -> None:
    assert load_entry(tmp_path, "absent", (".bin",)) is None
    save_entry(tmp_path, "model", FILES)
    data = bytearray(FILES[".bin"])
    data[100] ^= 1
    (tmp_path / "model.bin").write_bytes(bytes(data))
    assert load_entry(tmp_path, "model", (".xml", ".bin")) is None
    save_entry(tmp_path, "model", FILES)  # rebuilt
    (tmp_path / "model.json").write_text("[1, 2]")  # valid JSON, not a manifest
    assert load_entry(tmp_path, "model", (".xml",)) is None


def test_prune_keeps_the_most_recently_used_entries(tmp_path: Path) -> None:
    for i in range(4):
        save_entry(tmp_path, f"entry{i}", {".bin": b"x"})
        past = time.time() - 100 + i  # entry0 oldest
        os.utime(tmp_path / f"entry{i}.json", (past, past))
    assert load_entry(tmp_path, "entry0", (".bin",)) is not None  # used now: the newest
    prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "entry0.bin",
        "entry0.json",
        "entry3.bin",
        "entry3.json",
    ]


def test_prune_removes_old_temporary_files_only(tmp_path: Path) -> None:
    old, fresh, old_dir = tmp_path / ".a.partial", tmp_path / ".b.partial", tmp_path / ".export-x"
    old.write_text("killed writer")
    fresh.write_text("a writer at work")
    old_dir.mkdir()
    (old_dir / "model.bin").write_bytes(b"x")
    past = time.time() - 2 * 24 * 3600
    for path in (old, old_dir):
        os.utime(path, (past, past))
    prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".b.partial"]
