"""Blending clips into mixtures (paper Sec. 3.1) and the layer variants of the paper's experiments.

``make_mixtures`` groups a batch of independent clips into K-layer targets with fresh partners every
call (the dataset stays a plain clip reader); ``blend`` forms the weighted mean. Frozen clips
(Table 3), pure-colour layers (Fig. 4) and one-frozen pairs are built from the same pieces.
"""

from __future__ import annotations

import torch

from centrifuge.errors import CentrifugeError

__all__ = [
    "COLOURS",
    "blend",
    "colour_layer",
    "freeze_clips",
    "make_mixtures",
    "mixture_weights",
]

# The 8 filter colours of the paper's Fig. 4, RGB in [0, 1].
COLOURS: dict[str, tuple[float, float, float]] = {
    "black": (0.0, 0.0, 0.0),
    "white": (1.0, 1.0, 1.0),
    "green": (0.0, 1.0, 0.0),
    "red": (1.0, 0.0, 0.0),
    "yellow": (1.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
}


def blend(layers: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean of the layers: ``V = sum_k w_k V_k``.

    Args:
        layers: ``[B, K, C, T, H, W]`` (or ``[K, C, T, H, W]``), floats in ``[0, 1]``.
        weights: ``[B, K]`` or ``[K]`` summing to 1 over K; ``None`` = uniform ``1/K``.

    Returns:
        mixture ``[B, C, T, H, W]`` (or ``[C, T, H, W]``), in ``[0, 1]`` when the weights are
        convex.
    """
    k = layers.shape[-5]
    if weights is None:
        return layers.mean(dim=-5)
    weights = weights.to(layers.dtype)
    if weights.shape[-1] != k:
        raise CentrifugeError(f"{weights.shape[-1]} weights for {k} layers.")
    w = weights.reshape(*weights.shape, 1, 1, 1, 1)  # [..., K, 1, 1, 1, 1]
    return (layers * w).sum(dim=-5)


def mixture_weights(
    batch: int,
    n_layers: int,
    alpha: float | tuple[float, float] = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blend weights ``[B, K]`` summing to 1.

    K = 2: ``(1 - a, a)`` with ``a = alpha``, or ``a ~ U[lo, hi]`` when ``alpha = (lo, hi)``.
    K > 2: uniform ``1/K`` when ``alpha`` is a number, or ``w_k ~ U[lo, hi]`` normalised to sum 1.
    """
    if n_layers < 2:
        raise CentrifugeError(f"a mixture needs at least 2 layers, got {n_layers}.")
    if isinstance(alpha, tuple):
        lo, hi = alpha
        if not 0.0 <= lo <= hi <= 1.0:
            raise CentrifugeError(f"alpha range must satisfy 0 <= lo <= hi <= 1, got {alpha}.")
        u = torch.rand(batch, n_layers if n_layers > 2 else 1, generator=generator)
        u = lo + (hi - lo) * u
        if n_layers == 2:
            return torch.cat([1 - u, u], dim=1)
        return u / u.sum(dim=1, keepdim=True).clamp_min(1e-6)
    if not 0.0 <= alpha <= 1.0:
        raise CentrifugeError(f"alpha must be in [0, 1], got {alpha}.")
    if n_layers == 2:
        return torch.tensor([1 - alpha, alpha]).expand(batch, 2).clone()
    return torch.full((batch, n_layers), 1.0 / n_layers)


def make_mixtures(
    clips: torch.Tensor,
    n_layers: int = 2,
    alpha: float | tuple[float, float] = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group independent clips into random K-tuples and blend each tuple.

    Args:
        clips: ``[B*K, C, T, H, W]`` independent clips in ``[0, 1]``.
        n_layers: K, 2 (the paper) to 4.
        alpha: see :func:`mixture_weights`.
        generator: the RNG that draws partners and weights (fresh partners every call).

    Returns:
        ``(layers [B, K, C, T, H, W], mixture [B, C, T, H, W], weights [B, K])``.
    """
    n = clips.shape[0]
    if n % n_layers:
        raise CentrifugeError(f"{n} clips cannot be grouped into mixtures of {n_layers} layers.")
    order = torch.randperm(n, generator=generator).to(clips.device)
    layers = clips[order].reshape(n // n_layers, n_layers, *clips.shape[1:])  # [B, K, C, T, H, W]
    weights = mixture_weights(n // n_layers, n_layers, alpha, generator).to(clips.device)
    return layers, blend(layers, weights), weights


def freeze_clips(
    clips: torch.Tensor, generator: torch.Generator | None = None, which: torch.Tensor | None = None
) -> torch.Tensor:
    """Frozen versions of clips: each repeats one of its own frames (random) over all T.

    Args:
        clips: ``[N, C, T, H, W]``.
        which: optional bool ``[N]``; only those clips are frozen (for one-frozen pairs).

    Returns:
        ``[N, C, T, H, W]``.
    """
    n, _, t = clips.shape[:3]
    index = torch.randint(t, (n,), generator=generator).to(clips.device)
    frame = clips[torch.arange(n, device=clips.device), :, index]  # [N, C, H, W]
    frozen = frame.unsqueeze(2).expand_as(clips)
    if which is None:
        return frozen.clone()
    mask = which.to(clips.device).reshape(n, 1, 1, 1, 1)
    return torch.where(mask, frozen, clips)


def colour_layer(name: str, like: torch.Tensor) -> torch.Tensor:
    """A pure-colour video (Fig. 4) shaped like ``like [..., C, T, H, W]`` (dtype, device too)."""
    if name not in COLOURS:
        raise CentrifugeError(f"unknown colour {name!r}: choose from {', '.join(COLOURS)}.")
    rgb = torch.tensor(COLOURS[name], dtype=like.dtype, device=like.device)
    return rgb.reshape(3, 1, 1, 1).expand(like.shape).clone()
