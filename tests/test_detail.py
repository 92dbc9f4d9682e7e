"""``add_upsampled_difference``: full-size layers = full-size mixture + upsampled difference."""

from __future__ import annotations

import pytest
import torch

from centrifuge.inference.detail import add_upsampled_difference
from centrifuge.video.transforms import resize


def test_constant_differences_come_back_exactly_on_the_full_size_mixture() -> None:
    mixture = torch.rand(3, 4, 64, 96)
    small = resize(mixture, 32, 48)
    offsets = torch.tensor([0.1, -0.2]).reshape(2, 1, 1, 1, 1)
    pred = small[None] + offsets  # [N, C, T, h, w]: each layer = mixture + a constant
    out = add_upsampled_difference(pred, small, mixture)
    assert out.shape == (2, 3, 4, 64, 96) and out.dtype == torch.float32
    torch.testing.assert_close(out, mixture[None] + offsets, atol=1e-6, rtol=0)


def test_without_reduction_it_returns_the_prediction() -> None:
    mixture = torch.rand(3, 2, 32, 32)
    pred = torch.rand(4, 3, 2, 32, 32)
    torch.testing.assert_close(add_upsampled_difference(pred, mixture, mixture), pred)


def test_matches_the_antialiased_resize_of_the_difference() -> None:
    """Plain bilinear upsampling is the same function as the pipeline's antialiased ``resize``."""
    mixture = torch.rand(1, 3, 2, 90, 160)  # with a batch dimension
    small = resize(mixture, 45, 80)
    pred = torch.rand(1, 4, 3, 2, 45, 80)
    expected = mixture[:, None] + resize(pred - small[:, None], 90, 160)
    torch.testing.assert_close(add_upsampled_difference(pred, small, mixture), expected)


def test_shapes_that_do_not_line_up_are_refused() -> None:
    mixture = torch.rand(3, 2, 32, 32)
    small = torch.rand(3, 2, 16, 16)
    with pytest.raises(ValueError, match="line up"):
        add_upsampled_difference(torch.rand(2, 3, 2, 8, 8), small, mixture)
    with pytest.raises(ValueError, match="smaller"):
        add_upsampled_difference(torch.rand(2, 3, 2, 32, 32), mixture, small)
