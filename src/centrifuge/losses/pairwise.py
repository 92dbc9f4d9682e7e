"""Pairwise video losses: ``pw[b, i, j] = loss(pred[b, i], target[b, j])``, shape ``[B, N, K]``.

The paper's reconstruction loss (Eq. 3, and ../DESIGN.md): for videos U, V of T frames in [0, 1],

    l(U, V) = 1/(2T) * sum_t ( mean|U_t - V_t| + mean|grad U_t - grad V_t| )

where ``mean`` is over pixels and channels and ``grad`` is the spatial gradient by forward
differences; we take ``mean|grad D|`` as ``mean|D_x| + mean|D_y|`` (the L1 norm of the 2-vector
gradient, averaged over pixels), with ``D = U - V``. All frames have the same size, so the per-frame
average equals the mean over all frames.
"""

from __future__ import annotations

import torch

__all__ = ["pairwise_l1_grad", "video_loss"]


def video_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's l(U, V), reduced over ``[C, T, H, W]``.

    Shape: ``pred`` and ``target`` broadcastable ``[..., C, T, H, W]`` -> ``[...]``.
    """
    diff = pred - target
    l1 = diff.abs().mean(dim=(-4, -3, -2, -1))
    dx = (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean(dim=(-4, -3, -2, -1))
    dy = (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean(dim=(-4, -3, -2, -1))
    return 0.5 * (l1 + dx + dy)


def pairwise_l1_grad(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``pw[b, i, j] = video_loss(pred[b, i], target[b, j])``.

    Shape: pred ``[B, N, C, T, H, W]``, target ``[B, K, C, T, H, W]`` -> ``[B, N, K]``.
    One pass per target layer (K is small), so memory stays at one ``[B, N, ...]`` difference.
    """
    cols = [video_loss(pred, target[:, k : k + 1]) for k in range(target.shape[1])]  # K x [B, N]
    return torch.stack(cols, dim=-1)
