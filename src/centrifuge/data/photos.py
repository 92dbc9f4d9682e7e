"""Still photographs animated by a synthetic camera move: extra training clips with real content.

Each clip is a smooth pan and zoom over one photograph: a crop window moves linearly from a random
start box to a random end box over the clip (scale 0.55-1.0 of the photo's short side), rendered
with bilinear sampling. The motion is global (a camera move), the content is a real photograph.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from centrifuge.data.folder import ClipSpec, sample_rng
from centrifuge.errors import DataError
from centrifuge.video.read import IMAGE_EXTENSIONS, read_video

__all__ = ["Interleave", "PhotoClips"]


class PhotoClips(Dataset):
    """Map-style dataset of animated photographs, item ``i`` -> ``[C, T, S, S]`` in ``[0, 1]``.

    Args:
        folder: folder of photographs (searched recursively).
        spec: clip geometry.
        seed, rank: RNG stream (see :func:`~centrifuge.data.folder.sample_rng`).
        max_side: photos are kept in memory with this shortest side (uint8).
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        spec: ClipSpec,
        *,
        seed: int = 0,
        rank: int = 0,
        max_side: int | None = None,
    ) -> None:
        paths = sorted(
            p for p in _walk(folder) if os.path.splitext(p)[1].lower() in IMAGE_EXTENSIONS
        )
        if not paths:
            raise DataError(f"{folder}: no photographs found.")
        side = max_side or 2 * spec.short_side
        self.photos = [
            (read_video(p, size=side)[0][:, 0] * 255).round().to(torch.uint8) for p in paths
        ]
        self.spec, self.seed, self.rank = spec, seed, rank

    def __len__(self) -> int:
        return 2**31 - 1

    def to(self, device: torch.device | str) -> PhotoClips:
        """Keep the photographs on ``device`` (clips are then rendered there)."""
        self.photos = [p.to(device) for p in self.photos]
        return self

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = sample_rng(self.seed, self.rank + 1_000_003, index)
        photo = self.photos[int(rng.integers(len(self.photos)))].float().div(255.0)  # [C, H, W]
        return animate(photo, self.spec, rng)


def animate(photo: torch.Tensor, spec: ClipSpec, rng: np.random.Generator) -> torch.Tensor:
    """A camera move over ``photo [C, H, W]``: returns ``[C, T, S, S]``."""
    _, h, w = photo.shape
    short = min(h, w)

    def box() -> tuple[float, float, float]:
        size = short * rng.uniform(0.55, 1.0)
        return rng.uniform(0, w - size), rng.uniform(0, h - size), size

    (x0, y0, s0), (x1, y1, s1) = box(), box()
    t = torch.linspace(0, 1, spec.clip_len, dtype=torch.float64)
    xs, ys, ss = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, s0 + (s1 - s0) * t
    # Affine maps from output [-1, 1]^2 to the photo's normalised coordinates, one per frame.
    theta = torch.zeros(spec.clip_len, 2, 3, dtype=torch.float64)  # on the CPU: tiny
    theta[:, 0, 0] = ss / w
    theta[:, 1, 1] = ss / h
    theta[:, 0, 2] = (2 * xs + ss) / w - 1
    theta[:, 1, 2] = (2 * ys + ss) / h - 1
    size = (spec.clip_len, 3, spec.crop, spec.crop)
    grid = F.affine_grid(theta.float().to(photo.device), size, align_corners=False)
    frames = F.grid_sample(
        photo.expand(spec.clip_len, -1, -1, -1),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )  # [T, C, S, S]
    clip = frames.permute(1, 0, 2, 3).contiguous()  # [C, T, S, S]
    if spec.flip and rng.random() < 0.5:
        clip = clip.flip(-1)
    return clip


class Interleave(Dataset):
    """Item ``i`` comes from ``extra`` with probability ``fraction``, else from ``main``."""

    def __init__(self, main: Dataset, extra: Dataset, fraction: float, *, seed: int = 0) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise DataError(f"photo_fraction must be in [0, 1], got {fraction}.")
        self.main, self.extra, self.fraction, self.seed = main, extra, fraction, seed

    def __len__(self) -> int:
        return 2**31 - 1

    def uses_extra(self, index: int) -> bool:
        """Whether item ``index`` comes from ``extra``."""
        return sample_rng(self.seed, 7_777_777, index).random() < self.fraction

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.extra[index] if self.uses_extra(index) else self.main[index]


def _walk(folder: str | os.PathLike) -> list[str]:
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: not a folder of photographs.")
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
