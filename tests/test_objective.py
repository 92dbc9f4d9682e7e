"""The training objective (losses/objective.py): PIT plus the weighted terms, on a known case."""

from __future__ import annotations

import pytest
import torch

from centrifuge.losses import diversity_loss, pit_loss, recomposition_loss, training_objective


def _constant(*values: float) -> torch.Tensor:
    """One sample of constant videos ``[1, len(values), 3, 2, 4, 4]``: the paper's loss between two
    constants u, v is ``|u - v| / 2`` (no gradients)."""
    return torch.tensor(values).reshape(1, -1, 1, 1, 1, 1).expand(1, len(values), 3, 2, 4, 4)


LAYERS = _constant(0.2, 0.8)  # K = 2
PRED = _constant(0.7, 0.1, 0.5)  # N = 3
WEIGHTS = torch.tensor([[0.5, 0.5]])
MIXTURE = (LAYERS * WEIGHTS.reshape(1, 2, 1, 1, 1, 1)).sum(1)


def test_without_extra_terms_the_objective_is_pit() -> None:
    terms = training_objective(PRED, LAYERS, MIXTURE, WEIGHTS)
    # target 0.2 -> output 0.1 (0.05), target 0.8 -> output 0.7 (0.05): the best of the 6 maps
    assert terms.pit.item() == pytest.approx(0.1)
    assert terms.match.tolist() == [[1, 0]]
    assert terms.total is terms.pit
    loss, match = pit_loss(PRED, LAYERS)
    assert torch.equal(terms.pit, loss) and torch.equal(terms.match, match)


def test_permuted_copies_cost_nothing() -> None:
    terms = training_objective(LAYERS.flip(1), LAYERS, MIXTURE, WEIGHTS)
    assert terms.pit.item() == 0 and terms.match.tolist() == [[1, 0]]


def test_weighted_terms_add_to_pit() -> None:
    terms = training_objective(
        PRED, LAYERS, MIXTURE, WEIGHTS, recompose_weight=2.0, diversity_weight=0.5
    )
    # recomposed 0.5 * 0.1 + 0.5 * 0.7 = 0.4 against the mixture 0.5: 0.05;
    # diversity of the matched outputs 0.1 and 0.7: -0.3
    assert terms.pit.item() == pytest.approx(0.1)
    assert terms.total.item() == pytest.approx(0.1 + 2.0 * 0.05 + 0.5 * -0.3)
    match = terms.match
    recompose = recomposition_loss(PRED, match, MIXTURE, WEIGHTS)
    spread = diversity_loss(PRED, match)
    assert terms.total.item() == pytest.approx((terms.pit + 2.0 * recompose + 0.5 * spread).item())
