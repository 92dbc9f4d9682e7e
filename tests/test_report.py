from __future__ import annotations

import torch

from centrifuge.inference.report import LayerStats, layer_count, written_layers


def _mixture_and_outputs(weights: tuple[float, ...], seed: int = 0):
    torch.manual_seed(seed)
    mixture = torch.rand(3, 8, 24, 32)  # [C, T, H, W]
    return mixture, torch.stack([w * mixture for w in weights])  # [N, C, T, H, W]


def test_the_written_layers_are_the_farthest_apart_cluster_means_closer_first() -> None:
    mixture, pred = _mixture_and_outputs((0.2, 0.8, 0.3, 0.7))
    stats = LayerStats(4)
    stats.add(pred, mixture)
    assert stats.choose("2") == [(1, 3), (0, 2)]  # 0.75 x, then 0.25 x
    assert stats.choose("all") == [(1, 3), (0, 2), (1,), (3,), (2,), (0,)]
    assert stats.layer((1, 3))["difference_to_input"] < stats.layer((0, 2))["difference_to_input"]


def test_a_two_output_model_writes_its_two_outputs() -> None:
    mixture, pred = _mixture_and_outputs((0.1, 0.9))
    stats = LayerStats(2, every=3)
    stats.add(pred[:, :, :5], mixture[:, :5], start=0)
    stats.add(pred[:, :, 5:], mixture[:, 5:], start=5)  # frames 0, 3 and 6 are measured
    assert stats.frames == 3
    assert stats.choose("2") == stats.choose("all") == [(1,), (0,)]


def test_layer_count_of_each_mode() -> None:
    assert [layer_count(n, "2") for n in (2, 3, 4)] == [2, 2, 2]
    assert [layer_count(n, "all") for n in (2, 3, 4, 5)] == [2, 4, 6, 7]


def test_written_layers_batch_is_clamped_and_per_clip() -> None:
    m1, p1 = _mixture_and_outputs((1.4, 0.1, 1.2, 0.3), seed=1)
    m2, p2 = _mixture_and_outputs((0.9, 0.1, 0.2, 0.8), seed=2)
    out = written_layers(torch.stack([p1, p2]), torch.stack([m1, m2]), every=1)
    assert out.shape == (2, 2, 3, 8, 24, 32)
    torch.testing.assert_close(out[0, 0], (1.3 * m1).clamp(0, 1))  # {0, 2}: closer to the input
    torch.testing.assert_close(out[0, 1], 0.2 * m1)
    torch.testing.assert_close(out[1, 0], 0.85 * m2)
    torch.testing.assert_close(out[1, 1], 0.15 * m2)
    assert out.min() >= 0 and out.max() <= 1
