"""Losses: the paper's pairwise video loss, the permutation-invariant wrapper, the objective."""

from centrifuge.losses.objective import ObjectiveTerms, training_objective
from centrifuge.losses.pairwise import pairwise_l1_grad, video_loss
from centrifuge.losses.pit import (
    best_assignment,
    diversity,
    diversity_loss,
    most_dissimilar,
    pit_loss,
    recomposition_loss,
    reorder_layers,
)

__all__ = [
    "ObjectiveTerms",
    "best_assignment",
    "diversity",
    "diversity_loss",
    "most_dissimilar",
    "pairwise_l1_grad",
    "pit_loss",
    "recomposition_loss",
    "reorder_layers",
    "training_objective",
    "video_loss",
]
