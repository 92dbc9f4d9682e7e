"""Losses: the paper's pairwise video loss and the permutation-invariant wrapper."""

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
    "best_assignment",
    "diversity",
    "diversity_loss",
    "most_dissimilar",
    "pairwise_l1_grad",
    "pit_loss",
    "recomposition_loss",
    "reorder_layers",
    "video_loss",
]
