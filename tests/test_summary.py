"""``centrifuge models``: sizes of the registered models, FLOP counts cached per architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

import centrifuge.models.summary as summary


def test_flop_counts_are_traced_once_then_read_from_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CENTRIFUGE_CACHE", str(tmp_path))
    calls = []

    def count(name: str, clip: tuple[int, int, int]) -> int:
        calls.append((name, clip))
        return 7 * 10**9

    monkeypatch.setattr(summary, "count_flops", count)
    first = summary.model_summary("tiny")
    second = summary.model_summary("tiny")
    assert first == second
    assert first["gflops"] == {"32x112x112": 7.0, "64x224x224": 7.0}
    assert first["params"] > 0
    assert calls == [("tiny", clip) for clip in summary.CLIPS]  # traced once per clip
