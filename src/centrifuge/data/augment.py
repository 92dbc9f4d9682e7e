"""Augmentations of training clips before they are blended, as pure functions of a generator.

Each clip becomes one layer of a mixture, so jittering clips one by one makes the two layers of a
blend differ in colour and tone the way a reflection and the scene behind a window do, and the
model cannot split a blend by brightness alone. Every draw comes from the step's generator, so a
resumed run repeats them exactly.
"""

from __future__ import annotations

import torch

__all__ = ["augment_clips", "jitter_colour", "reverse_time"]


def jitter_colour(clips: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Per clip, a gamma ``exp(U[-s, s])`` and per-channel gains ``exp(U[-s/2, s/2])``.

    Shape: clips ``[B, C, T, H, W]`` in ``[0, 1]`` -> the same, in ``[0, 1]``.
    """
    b, c = clips.shape[:2]
    gamma = torch.exp((2 * torch.rand(b, generator=generator) - 1) * strength)
    gain = torch.exp((torch.rand(b, c, generator=generator) - 0.5) * strength)
    gamma = gamma.to(clips.device).reshape(b, 1, 1, 1, 1)
    gain = gain.to(clips.device).reshape(b, c, 1, 1, 1)
    return (clips.clamp(min=1e-6) ** gamma * gain).clamp(0, 1)


def reverse_time(clips: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Each clip played backwards with probability ``p``.

    Shape: clips ``[B, C, T, H, W]`` -> the same.
    """
    flip = (torch.rand(clips.shape[0], generator=generator) < p).to(clips.device)
    return torch.where(flip.reshape(-1, 1, 1, 1, 1), clips.flip(2), clips)


def augment_clips(
    clips: torch.Tensor, *, colour: float, reverse: float, generator: torch.Generator
) -> torch.Tensor:
    """:func:`jitter_colour` with strength ``colour`` then :func:`reverse_time` with probability
    ``reverse``; a zero skips its step (and draws nothing).

    Shape: clips ``[B, C, T, H, W]`` in ``[0, 1]`` -> the same.
    """
    if colour:
        clips = jitter_colour(clips, colour, generator)
    if reverse:
        clips = reverse_time(clips, reverse, generator)
    return clips
