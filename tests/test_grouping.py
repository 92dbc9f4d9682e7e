from __future__ import annotations

from math import comb

import pytest
import torch

from centrifuge.losses.grouping import (
    balanced_bipartitions,
    compose,
    groups_of,
    singles,
    written_pit_loss,
)


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


def test_written_pit_loss_scores_the_farthest_split_means() -> None:
    torch.manual_seed(1)
    layers = torch.rand(2, 2, 3, 4, 16, 16)
    d = 0.1 * torch.randn(2, 3, 4, 16, 16)
    pred = torch.stack([layers[:, 0] + d, layers[:, 1] - d, layers[:, 0] - d, layers[:, 1] + d], 1)
    pred.requires_grad_()
    loss = written_pit_loss(pred, layers)
    assert loss.item() < 1e-6  # the means of {0, 2} and {1, 3} are the layers
    loss.backward()
    assert pred.grad is not None
    swapped = torch.stack([layers[:, 1], layers[:, 0]], 1)
    assert written_pit_loss(swapped, layers).item() == 0.0  # either order


def test_augmentations_keep_range_and_repeat_with_the_generator() -> None:
    from centrifuge.data.augment import augment_clips

    clips = torch.rand(4, 3, 5, 8, 8)
    a = augment_clips(clips, colour=0.3, reverse=0.5, generator=torch.Generator().manual_seed(3))
    b = augment_clips(clips, colour=0.3, reverse=0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and not torch.equal(a, clips)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(augment_clips(clips, colour=0, reverse=0, generator=g), clips)
    backwards = augment_clips(clips, colour=0, reverse=1.0, generator=g)
    assert torch.equal(backwards, clips.flip(2))
