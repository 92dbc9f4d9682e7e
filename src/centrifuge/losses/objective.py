"""The training objective: the permutation-invariant loss plus the optional terms of Sec. 4.1.

``total = pit + recompose_weight * recomposition + diversity_weight * (-diversity)
+ written_weight * written``, where the recomposition and diversity terms use the assignment PIT
chose and ``written`` is the loss of the layers ``separate`` writes (the farthest-apart cluster
means, :func:`~centrifuge.losses.grouping.written_pit_loss`). The weights come from the training
config; a zero weight skips its term. ``pit`` is the number reported as "loss" everywhere (paper
Eq. 2-3); ``total`` is what the optimiser minimises.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from centrifuge.losses.grouping import written_pit_loss
from centrifuge.losses.pit import diversity_loss, pit_loss, recomposition_loss

__all__ = ["ObjectiveTerms", "training_objective"]


class ObjectiveTerms(NamedTuple):
    """Scalars ``total`` (minimised) and ``pit`` (reported), and int64 ``match [B, K]``."""

    total: torch.Tensor
    pit: torch.Tensor
    match: torch.Tensor


def training_objective(
    pred: torch.Tensor,
    layers: torch.Tensor,
    mixture: torch.Tensor,
    weights: torch.Tensor,
    *,
    recompose_weight: float = 0.0,
    diversity_weight: float = 0.0,
    written_weight: float = 0.0,
) -> ObjectiveTerms:
    """PIT loss plus the weighted recomposition (Eq. 4) and diversity terms.

    Args:
        pred: outputs ``[B, N, C, T, H, W]``.
        layers: ground truth ``[B, K, C, T, H, W]``, K <= N.
        mixture: the model's input ``[B, C, T, H, W]`` (for the recomposition term).
        weights: the blend weights ``[B, K]`` that made ``mixture`` from ``layers``.
        recompose_weight: weight of :func:`~centrifuge.losses.recomposition_loss`.
        diversity_weight: weight of :func:`~centrifuge.losses.diversity_loss`.
        written_weight: weight of :func:`~centrifuge.losses.grouping.written_pit_loss` (K = 2).

    Returns:
        :class:`ObjectiveTerms` ``(total, pit, match)``; with every weight zero, ``total is pit``.
    """
    pit, match = pit_loss(pred, layers)
    total = pit
    if recompose_weight:
        total = total + recompose_weight * recomposition_loss(pred, match, mixture, weights)
    if diversity_weight:
        total = total + diversity_weight * diversity_loss(pred, match)
    if written_weight:
        total = total + written_weight * written_pit_loss(pred, layers)
    return ObjectiveTerms(total, pit, match)
