"""Sizes of the registered models for ``centrifuge models``: parameters and forward FLOPs.

Counting FLOPs traces a model on the meta device (seconds per model and clip on a CPU), so counts
are kept in the user's cache folder, keyed by the model's architecture, the clip and the torch
version: the first ``centrifuge models`` counts, later ones read.
"""

from __future__ import annotations

import hashlib
import json

import torch

from centrifuge.models.registry import build_model, count_flops, model_kwargs
from centrifuge.utils import atomic_path, cache_dir

__all__ = ["CLIPS", "model_summary"]

CLIPS = ((32, 112, 112), (64, 224, 224))  # (T, H, W) of the clips FLOPs are given for


def _cached_flops(name: str, clip: tuple[int, int, int]) -> int:
    key = json.dumps([model_kwargs(name), clip, torch.__version__], sort_keys=True, default=str)
    path = cache_dir("flops") / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.json"
    try:
        return int(json.loads(path.read_text())["flops"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    flops = count_flops(name, clip)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"key": key, "flops": flops}))
    return flops


def model_summary(name: str) -> dict:
    """``{"params": int, "gflops": {"32x112x112": float, ...}}`` for a registered model."""
    with torch.device("meta"):  # sizes only: nothing is allocated
        params = sum(p.numel() for p in build_model(name).parameters())
    gflops = {"x".join(map(str, clip)): _cached_flops(name, clip) / 1e9 for clip in CLIPS}
    return {"params": params, "gflops": gflops}
