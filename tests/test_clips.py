"""Window arithmetic (video/clips.py): window starts, cutting a stream, tiles, overlap-add."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from centrifuge.video.clips import (
    OverlapAdd,
    sliding_windows,
    tile_starts,
    triangular_weights,
    window_starts,
)


def test_window_starts_known_answers() -> None:
    assert window_starts(100, 32, 8) == [0, 24, 48, 72]  # 72 + 32 >= 100: the last one
    assert window_starts(32, 32, 8) == [0]
    assert window_starts(5, 32, 8) == [0]
    assert window_starts(33, 32, 8) == [0, 24]
    assert window_starts(20, 7, 0) == [0, 7, 14]
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 4)


@given(st.integers(1, 200), st.integers(1, 40), st.data())
def test_sliding_windows_cut_where_window_starts_says_and_cover_every_frame(
    num_frames: int, clip_len: int, data: st.DataObject
) -> None:
    overlap = data.draw(st.integers(0, clip_len - 1))
    windows = list(sliding_windows(range(num_frames), clip_len, overlap))
    assert [s for s, _ in windows] == window_starts(num_frames, clip_len, overlap)
    for start, items in windows:
        assert items == list(range(start, min(start + clip_len, num_frames)))
    assert windows[-1][1][-1] == num_frames - 1
    # consecutive windows share exactly ``overlap`` frames (the last may be short)
    for (a, _), (b, _) in itertools.pairwise(windows):
        assert b - a == clip_len - overlap


def test_tile_starts_keep_full_tiles_and_reach_the_edge() -> None:
    assert tile_starts(45, 24, 8) == [0, 16, 21]
    assert tile_starts(24, 24, 8) == [0]
    assert tile_starts(10, 24, 8) == [0]
    assert tile_starts(100, 40, 10) == [0, 30, 60]


def test_triangular_weights() -> None:
    torch.testing.assert_close(triangular_weights(5), torch.tensor([1, 2, 3, 2, 1]) / 3)
    torch.testing.assert_close(triangular_weights(4), torch.tensor([1, 2, 2, 1]) / 2)
    assert triangular_weights(1).tolist() == [1.0]


def test_overlap_add_cross_fades_two_windows_known_answer() -> None:
    acc = OverlapAdd(dim=0)
    acc.add(0, torch.full((4,), 1.0), torch.tensor([1.0, 2, 2, 1]))
    assert acc.pop_finished(2).tolist() == [1.0, 1.0]  # frames 0, 1 are finished
    acc.add(2, torch.full((4,), 4.0), torch.tensor([1.0, 2, 2, 1]))
    # frame 2: (1*2 + 4*1) / 3 = 2; frame 3: (1*1 + 4*2) / 3 = 3; then 4, 4
    assert acc.pop_finished().tolist() == [2.0, 3.0, 4.0, 4.0]
    assert acc.pop_finished() is None
    assert acc.start == 6


def test_overlap_add_keeps_weights_at_their_own_shape() -> None:
    acc = OverlapAdd(dim=2)
    pred = torch.ones(2, 3, 5, 4, 4)
    acc.add(10, pred, triangular_weights(5).reshape(1, 1, 5, 1, 1))
    acc.add(13, 2 * pred, triangular_weights(5).reshape(1, 1, 5, 1, 1))
    assert acc.weight.shape == (1, 1, 8, 1, 1) and acc.sum.shape == (2, 3, 8, 4, 4)
    out = acc.pop_finished(13)
    assert out.shape == (2, 3, 3, 4, 4) and torch.all(out == 1)
    with pytest.raises(ValueError, match="before"):
        acc.add(12, pred, torch.ones(1, 1, 5, 1, 1))


def test_overlap_add_on_a_canvas_reconstructs_a_constant_from_tiles() -> None:
    h, w, tile, overlap = 45, 70, 24, 8
    acc = OverlapAdd.on_canvas((1, h, w), (1, h, w))
    wt = triangular_weights(tile)[:, None] * triangular_weights(tile)[None, :]
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            region = (..., slice(top, top + tile), slice(left, left + tile))
            done, seen = acc.covered(region)
            covered = done[seen.expand_as(done)]  # what earlier tiles put there
            torch.testing.assert_close(covered, torch.full_like(covered, 3.0))
            acc.add(region, torch.full((1, tile, tile), 3.0), wt[None])
    torch.testing.assert_close(acc.finished(), torch.full((1, h, w), 3.0))
