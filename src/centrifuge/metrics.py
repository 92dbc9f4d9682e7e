"""Per-layer quality metrics after PIT alignment (PSNR and SSIM of videos in ``[0, 1]``), and the
identity baseline they are reported beside."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["identity_baseline", "psnr", "ssim"]


def identity_baseline(mixture: torch.Tensor, n_layers: int) -> torch.Tensor:
    """The identity baseline's prediction: the mixture itself as each of ``n_layers`` outputs.

    Shape: mixture ``[B, C, T, H, W]`` -> ``[B, n_layers, C, T, H, W]`` (a view, no copy).
    """
    return mixture.unsqueeze(1).expand(-1, n_layers, *mixture.shape[1:])


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB over ``[..., C, T, H, W]`` (pred clamped to ``[0, 1]``) -> ``[...]``.

    Identical videos give ``inf``; callers average finite values or cap them.
    """
    mse = (pred.clamp(0, 1) - target).square().mean(dim=(-4, -3, -2, -1))
    return 10 * torch.log10(1.0 / mse)


def _gaussian(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    pred: torch.Tensor, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) over ``[..., C, T, H, W]`` -> ``[...]``.

    Computed per frame and channel with an 11x11 Gaussian window (sigma 1.5), constants
    ``K1 = 0.01``, ``K2 = 0.03`` for data range 1, over the valid region (no padding); pred is
    clamped to ``[0, 1]``. Matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)`` averaged over channels and frames.
    """
    lead = pred.shape[:-4]
    c, t, h, w = pred.shape[-4:]
    x = pred.clamp(0, 1).reshape(-1, 1, h, w).float()  # [(... C T), 1, H, W]
    y = target.reshape(-1, 1, h, w).float()
    g = _gaussian(window, sigma, x.dtype, x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(z, g.reshape(1, 1, -1, 1)), g.reshape(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    per_image = s.mean(dim=(-3, -2, -1))  # [(... C T)]
    return per_image.reshape(*lead, c * t).mean(-1).to(pred.dtype)
