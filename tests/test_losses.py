from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from centrifuge.data import blend
from centrifuge.losses import (
    best_assignment,
    diversity,
    diversity_loss,
    most_dissimilar,
    pairwise_l1_grad,
    pit_loss,
    recomposition_loss,
    reorder_layers,
    video_loss,
)


def _loop_video_loss(u: torch.Tensor, v: torch.Tensor) -> float:
    """The paper's Eq. 3 written frame by frame, as a reference."""
    t_len = u.shape[1]
    total = 0.0
    for t in range(t_len):
        d = u[:, t] - v[:, t]  # [C, H, W]
        grad = (d[:, :, 1:] - d[:, :, :-1]).abs().mean() + (d[:, 1:, :] - d[:, :-1, :]).abs().mean()
        total += d.abs().mean().item() + grad.item()
    return total / (2 * t_len)


def _loop_pit(pred: torch.Tensor, layers: torch.Tensor) -> float:
    """min over injective assignments, per sample, by plain loops."""
    b, n, k = pred.shape[0], pred.shape[1], layers.shape[1]
    losses = []
    for i in range(b):
        best = min(
            sum(_loop_video_loss(layers[i, j], pred[i, perm[j]]) for j in range(k))
            for perm in itertools.permutations(range(n), k)
        )
        losses.append(best)
    return sum(losses) / b


def test_video_loss_equals_frame_loop() -> None:
    u, v = torch.rand(3, 5, 9, 11), torch.rand(3, 5, 9, 11)
    assert video_loss(u, v).item() == pytest.approx(_loop_video_loss(u, v), rel=1e-5)


@pytest.mark.parametrize(("n", "k"), [(2, 2), (4, 2), (3, 3)])
def test_pit_loss_equals_loop_implementation(n: int, k: int) -> None:
    pred, layers = torch.rand(3, n, 3, 4, 8, 8), torch.rand(3, k, 3, 4, 8, 8)
    loss, match = pit_loss(pred, layers)
    assert loss.item() == pytest.approx(_loop_pit(pred, layers), rel=1e-5)
    assert match.shape == (3, k)
    assert all(len(set(m.tolist())) == k for m in match)


def test_pairwise_matrix_layout() -> None:
    pred, target = torch.rand(2, 3, 3, 2, 6, 6), torch.rand(2, 2, 3, 2, 6, 6)
    pw = pairwise_l1_grad(pred, target)
    assert pw.shape == (2, 3, 2)
    assert pw[1, 2, 0].item() == pytest.approx(video_loss(pred[1, 2], target[1, 0]).item())


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(4))), st.integers(0, 1000))
def test_pit_is_zero_for_a_permuted_copy(perm: list[int], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    layers = torch.rand(1, 4, 3, 2, 6, 6, generator=g)
    pred = layers[:, perm]
    loss, match = pit_loss(pred, layers)
    assert loss.item() == 0.0
    assert torch.equal(reorder_layers(pred, match), layers)
    inverse = [perm.index(j) for j in range(4)]
    assert match[0].tolist() == inverse


def test_pit_finds_the_right_outputs_among_more_hypotheses() -> None:
    layers = torch.rand(2, 2, 3, 4, 8, 8)
    pred = torch.rand(2, 5, 3, 4, 8, 8)
    pred[0, 3], pred[0, 1] = layers[0, 0], layers[0, 1]
    pred[1, 0], pred[1, 4] = layers[1, 0], layers[1, 1]
    loss, match = pit_loss(pred, layers)
    assert loss.item() == 0.0
    assert match.tolist() == [[3, 1], [0, 4]]


def test_pit_is_invariant_to_permuting_pred() -> None:
    pred, layers = torch.rand(2, 4, 3, 2, 6, 6), torch.rand(2, 2, 3, 2, 6, 6)
    a, _ = pit_loss(pred, layers)
    b, _ = pit_loss(pred[:, [2, 0, 3, 1]], layers)
    assert a.item() == pytest.approx(b.item())


def test_hungarian_agrees_with_exhaustive_search(monkeypatch) -> None:
    from centrifuge.losses import pit

    pw = torch.rand(4, 7, 3)
    exhaustive = best_assignment(pw)
    monkeypatch.setattr(pit, "EXHAUSTIVE_LIMIT", 1)
    hungarian = best_assignment(pw)
    assert torch.allclose(exhaustive[0], hungarian[0])
    assert torch.equal(exhaustive[1], hungarian[1])


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_identity_baseline_equals_its_closed_form(alpha: float) -> None:
    # Outputting the mixture V = (1-a) V1 + a V2 twice costs a l(V1, V2) + (1-a) l(V1, V2).
    layers = torch.rand(3, 2, 3, 4, 8, 8)
    mixture = blend(layers, torch.tensor([1 - alpha, alpha]))
    pred = mixture[:, None].expand(-1, 2, -1, -1, -1, -1)
    loss, _ = pit_loss(pred, layers)
    closed = video_loss(layers[:, 0], layers[:, 1]).mean()
    assert loss.item() == pytest.approx(closed.item(), rel=1e-5)


def test_recomposition_and_diversity_terms() -> None:
    layers = torch.rand(2, 2, 3, 3, 6, 6)
    w = torch.full((2, 2), 0.5)
    mixture = blend(layers, w)
    pred = torch.cat([layers, torch.rand(2, 1, 3, 3, 6, 6)], dim=1)
    _, match = pit_loss(pred, layers)
    assert recomposition_loss(pred, match, mixture, w).item() == pytest.approx(0.0, abs=1e-6)
    expected = -video_loss(layers[:, 0], layers[:, 1]).mean()
    assert diversity_loss(pred, match).item() == pytest.approx(expected.item(), rel=1e-5)


def test_diversity_metric_and_most_dissimilar_pair() -> None:
    base = torch.rand(1, 1, 3, 2, 6, 6)
    pred = torch.cat([base, base + 0.01, 1 - base, base + 0.02], dim=1)
    d = diversity(pred)
    assert d.shape == (1,) and d.item() == pytest.approx(
        video_loss(pred[0, 0], pred[0, 1]).item(), rel=1e-4
    )
    pair = most_dissimilar(pred)[0].tolist()
    assert 2 in pair and pair[0] < pair[1]
