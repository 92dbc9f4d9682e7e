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

__all__ = ["Group", "balanced_bipartitions", "compose", "groups_of", "singles"]

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
