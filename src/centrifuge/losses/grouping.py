"""Groups of outputs: the layers ``separate`` writes are means of groups of the model's outputs.

A model with N >= 2 outputs for a blend of two videos tends to spread each video over several
outputs (the paper saw its 4 outputs form two clusters). Writing the mean of each cluster gives a
better layer than any single output (bench/choice_rules.py). The two written layers are the two
halves of a *balanced bipartition* of the outputs (sizes ``N // 2`` and ``N - N // 2``): for N = 2
the two outputs, for N = 4 one of the three 2 + 2 groupings. Which one is chosen from statistics
by :class:`centrifuge.inference.report.LayerStats`; this module only enumerates and composes,
as pure functions.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch

from centrifuge.losses.pairwise import pairwise_l1_grad, video_loss

__all__ = [
    "Group",
    "balanced_bipartitions",
    "compose",
    "farthest_split",
    "groups_of",
    "singles",
    "split_means",
    "written_pit_loss",
]

Group = tuple[int, ...]  # output indices, increasing; a written layer is their mean


@lru_cache(maxsize=32)
def balanced_bipartitions(n: int) -> tuple[tuple[Group, Group], ...]:
    """Every split of the outputs ``0 .. n-1`` into two halves of sizes ``n // 2`` and
    ``n - n // 2``, each unordered split once (for even ``n``, the half holding output 0 first).

    ``n = 2``: ``((0,), (1,))``; ``n = 3``: three ``1 + 2`` splits; ``n = 4``: three ``2 + 2``.
    """
    if n < 2:
        raise ValueError(f"a bipartition needs at least 2 outputs, not {n}")
    small = n // 2
    out = []
    for half in itertools.combinations(range(n), small):
        if 2 * small == n and 0 not in half:
            continue  # the same split as its complement, already listed
        rest = tuple(i for i in range(n) if i not in half)
        out.append((half, rest))
    return tuple(out)


def singles(n: int) -> list[Group]:
    """Each output on its own: ``[(0,), (1,), ..., (n-1,)]``."""
    return [(i,) for i in range(n)]


def groups_of(n: int) -> list[Group]:
    """Every group a layer can be made of: the singles, then each half of
    :func:`balanced_bipartitions` not already listed, in order of first appearance."""
    seen = dict.fromkeys(singles(n))
    for split in balanced_bipartitions(n):
        seen.update(dict.fromkeys(split))
    return list(seen)


def compose(layers: torch.Tensor, groups: list[Group], dim: int = 0) -> torch.Tensor:
    """The mean of the outputs of each group, stacked along ``dim``.

    Shape: ``layers`` with the N outputs along ``dim`` (e.g. ``[N, C, T, H, W]`` with ``dim=0`` or
    ``[B, N, C, T, H, W]`` with ``dim=1``) -> the same with ``len(groups)`` along ``dim``. A group
    of one output is that output, bit for bit. Values keep their range (means of values in
    ``[0, 1]`` stay in it).
    """
    parts = []
    for group in groups:
        if len(group) == 1:
            parts.append(layers.select(dim, group[0]))
        else:
            index = torch.tensor(group, device=layers.device)
            parts.append(layers.index_select(dim, index).mean(dim))
    return torch.stack(parts, dim=dim)


def split_means(pred: torch.Tensor) -> torch.Tensor:
    """The two half-means of every balanced bipartition, in :func:`balanced_bipartitions` order.

    Shape: pred ``[B, N, C, T, H, W]`` -> ``[B, S, 2, C, T, H, W]`` (S splits).
    """
    splits = balanced_bipartitions(pred.shape[1])
    halves = [half for split in splits for half in split]
    means = compose(pred, halves, dim=1)  # [B, 2S, C, T, H, W]
    return means.reshape(pred.shape[0], len(splits), 2, *pred.shape[2:])


@torch.no_grad()
def farthest_split(means: torch.Tensor) -> torch.Tensor:
    """Per clip, the split whose two half-means are farthest apart by the paper's loss (the
    choice ``separate`` makes, here on the whole clip at its own size): ``[B, S, 2, C, T, H, W]``
    from :func:`split_means` -> int64 ``[B]``, the first such split on a tie."""
    return video_loss(means[:, :, 0], means[:, :, 1]).argmax(dim=1)


def written_pit_loss(pred: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """The paper's loss of the two layers ``separate`` writes: the half-means of the
    :func:`farthest_split` (chosen without the answer, no gradient through the choice), matched
    to the two true layers in the better of the two orders; mean over the batch.

    Shape: pred ``[B, N, C, T, H, W]``, layers ``[B, 2, C, T, H, W]`` -> scalar.
    """
    means = split_means(pred)  # [B, S, 2, C, T, H, W]
    chosen = farthest_split(means)
    written = means[torch.arange(len(means), device=means.device), chosen]  # [B, 2, C, T, H, W]
    pw = pairwise_l1_grad(written, layers)  # [B, 2, 2]
    cost = torch.minimum(pw[:, 0, 0] + pw[:, 1, 1], pw[:, 0, 1] + pw[:, 1, 0])
    return cost.mean()
