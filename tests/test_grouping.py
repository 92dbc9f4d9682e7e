from __future__ import annotations

from math import comb

import pytest
import torch

from centrifuge.losses.grouping import balanced_bipartitions, compose, groups_of, singles


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_balanced_bipartitions_list_every_split_once(n: int) -> None:
    splits = balanced_bipartitions(n)
    small = n // 2
    expected = comb(n, small) // (2 if 2 * small == n else 1)
    assert len(splits) == expected
    as_sets = {frozenset((frozenset(a), frozenset(b))) for a, b in splits}
    assert len(as_sets) == expected  # no split twice, in either order
    for a, b in splits:
        assert sorted(a + b) == list(range(n))  # a partition of the outputs
        assert (len(a), len(b)) == (small, n - small)
        assert list(a) == sorted(a) and list(b) == sorted(b)


def test_the_splits_of_two_and_four_outputs() -> None:
    assert balanced_bipartitions(2) == (((0,), (1,)),)
    assert balanced_bipartitions(4) == (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))
    with pytest.raises(ValueError):
        balanced_bipartitions(1)


def test_groups_of_holds_the_singles_then_every_half() -> None:
    assert groups_of(2) == singles(2) == [(0,), (1,)]
    four = groups_of(4)
    assert four[:4] == singles(4) and len(four) == 4 + 6 and len(set(four)) == len(four)


def test_compose_is_the_group_mean_and_exact_for_one_output() -> None:
    torch.manual_seed(0)
    layers = torch.rand(2, 4, 3, 2, 5, 6)  # [B, N, C, T, H, W]
    out = compose(layers, [(2,), (0, 3), (0, 1, 2, 3)], dim=1)
    assert out.shape == (2, 3, 3, 2, 5, 6)
    assert torch.equal(out[:, 0], layers[:, 2])  # bit for bit
    torch.testing.assert_close(out[:, 1], (layers[:, 0] + layers[:, 3]) / 2)
    torch.testing.assert_close(out[:, 2], layers.mean(1))
    assert torch.equal(compose(layers[0], [(1,), (3,)]), layers[0, [1, 3]])  # dim=0
