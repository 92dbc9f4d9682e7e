"""Permutation-invariant loss (paper Eq. 2) and the other loss terms of Sec. 4.1, as pure functions.

``pit_loss`` assigns the K ground-truth layers to K distinct outputs among the N (an injective
assignment; for K = 2 the paper's ``min over i != j``), exhaustively over the ``N!/(N-K)!``
assignments while there are at most :data:`EXHAUSTIVE_LIMIT`, with the Hungarian algorithm beyond.
Losses are the *sum* over the K layers, averaged over the batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from centrifuge.losses.pairwise import pairwise_l1_grad, video_loss

__all__ = [
    "best_assignment",
    "diversity",
    "diversity_loss",
    "most_dissimilar",
    "most_dissimilar_pair",
    "pit_loss",
    "recomposition_loss",
    "reorder_layers",
]

EXHAUSTIVE_LIMIT = 20_000

PairwiseLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@lru_cache(maxsize=64)
def _assignments(n: int, k: int) -> torch.Tensor:
    """All injective maps of K targets to N outputs: int64 ``[P, K]``."""
    return torch.tensor(list(itertools.permutations(range(n), k)), dtype=torch.long)


def best_assignment(pw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cheapest injective assignment of targets to outputs.

    Args:
        pw: pairwise losses ``[B, N, K]`` (N >= K).

    Returns:
        ``(cost [B], match [B, K])`` with ``match[b, k]`` the output assigned to target ``k``;
        ``cost`` keeps the graph of ``pw``.
    """
    b, n, k = pw.shape
    if n < k:
        raise ValueError(f"{n} outputs cannot cover {k} targets")
    n_assign = 1
    for i in range(k):
        n_assign *= n - i
    if n_assign <= EXHAUSTIVE_LIMIT:
        perms = _assignments(n, k).to(pw.device)  # [P, K]
        targets = torch.arange(k, device=pw.device)
        costs = pw[:, perms, targets].sum(-1)  # [B, P]
        best = costs.argmin(dim=1)  # [B]
        return costs.gather(1, best[:, None])[:, 0], perms[best]
    cpu = pw.detach().float().cpu().numpy()
    match = np.empty((b, k), dtype=np.int64)
    for i in range(b):  # Hungarian, only for very large N and K
        rows, cols = linear_sum_assignment(cpu[i].T)  # rows = targets, cols = outputs
        match[i, rows] = cols
    match_t = torch.from_numpy(match).to(pw.device)
    cost = pw.gather(1, match_t[:, None, :])[:, 0].sum(-1)
    return cost, match_t


def pit_loss(
    pred: torch.Tensor, layers: torch.Tensor, pairwise: PairwiseLoss = pairwise_l1_grad
) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutation-invariant loss.

    Args:
        pred: outputs ``[B, N, C, T, H, W]``.
        layers: ground truth ``[B, K, C, T, H, W]``, K <= N.
        pairwise: a function returning ``[B, N, K]`` (default: the paper's L1 + gradient loss).

    Returns:
        ``(loss, match)``: scalar mean over the batch of the summed per-layer loss, and int64
        ``[B, K]`` (the output matched to each target).
    """
    cost, match = best_assignment(pairwise(pred, layers))
    return cost.mean(), match


def reorder_layers(pred: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """Pick the matched outputs in target order: ``[B, N, ...]`` + ``[B, K]`` -> ``[B, K, ...]``."""
    index = match.reshape(*match.shape, *([1] * (pred.ndim - 2))).expand(-1, -1, *pred.shape[2:])
    return pred.gather(1, index)


def recomposition_loss(
    pred: torch.Tensor, match: torch.Tensor, mixture: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Eq. 4: ``l(V, sum_k w_k O_match(k))``, mean over the batch.

    Shapes: pred ``[B, N, C, T, H, W]``, match ``[B, K]``, mixture ``[B, C, T, H, W]``,
    weights ``[B, K]``.
    """
    chosen = reorder_layers(pred, match)  # [B, K, C, T, H, W]
    recomposed = (chosen * weights.reshape(*weights.shape, 1, 1, 1, 1).to(pred.dtype)).sum(1)
    return video_loss(recomposed, mixture).mean()


def _output_pairs(pred: torch.Tensor) -> torch.Tensor:
    """``l(O_i, O_j)`` for all output pairs: ``[B, N, N]`` (symmetric, zero diagonal)."""
    return pairwise_l1_grad(pred, pred)


def diversity_loss(pred: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
    """The paper's explicit diversity term ``-l(O_i, O_j)`` for the matched outputs (K = 2; for
    K > 2 the mean over matched pairs), mean over the batch."""
    chosen = reorder_layers(pred, match)  # [B, K, ...]
    pw = pairwise_l1_grad(chosen, chosen)  # [B, K, K]
    k = pw.shape[-1]
    off = ~torch.eye(k, dtype=torch.bool, device=pw.device)
    return -pw[:, off].mean()


def diversity(pred: torch.Tensor) -> torch.Tensor:
    """Diversity metric ``min_{i != j} l(O_i, O_j)`` per sample: ``[B, N, ...]`` -> ``[B]``."""
    pw = _output_pairs(pred)
    n = pw.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=pw.device)
    return pw.masked_fill(eye, float("inf")).flatten(1).min(dim=1).values


def most_dissimilar(pred: torch.Tensor) -> torch.Tensor:
    """The two most dissimilar outputs (paper Sec. 3.2): int64 ``[B, 2]``, ``i < j``, maximising
    ``l(O_i, O_j)``."""
    return most_dissimilar_pair(_output_pairs(pred))


def most_dissimilar_pair(pw: torch.Tensor) -> torch.Tensor:
    """The pair ``i < j`` with the largest ``pw[b, i, j]`` (a symmetric matrix of distances
    between outputs, ``[B, N, N]``): int64 ``[B, 2]``; the first such pair on a tie."""
    n = pw.shape[-1]
    upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=pw.device), diagonal=1)
    flat = pw.masked_fill(~upper, float("-inf")).flatten(1).argmax(dim=1)  # [B]
    return torch.stack([flat // n, flat % n], dim=1)
