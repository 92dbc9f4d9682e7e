"""``centrifuge separate``'s default fast path (issue 17) against plain PyTorch, on real clips.

The default runs the bundled model through the automatic engine (OpenVINO on a CPU) at
``--size auto``; the layers it hands to the encoder must match those of eager PyTorch fp32 on the
same settings within the stated tolerance: under one 8-bit level on average, at most a few.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from centrifuge.inference.files import separate_file
from centrifuge.inference.separator import Separator
from centrifuge.pretrained import load_model

# OpenVINO stays out of the processes that run the rest of the suite (see the Makefile)
pytestmark = pytest.mark.engine

MEAN_LEVELS = 1.0  # mean absolute difference, in levels of 8-bit output
MAX_LEVELS = 4.0  # largest absolute difference, in levels

pytest.importorskip("openvino", reason="the fast path needs OpenVINO (installed on x86-64)")


def _layers(backend: str, video: Path, out: Path) -> torch.Tensor:
    separator = Separator(load_model("small"), size="auto", backend=backend)
    chunks: dict[int, torch.Tensor] = {}
    report = separate_file(separator, video, out, on_layers=chunks.__setitem__)
    assert report["settings"]["size"] != "native"  # the reduced-size path ran
    return torch.cat([chunks[s] for s in sorted(chunks)], dim=2)


@pytest.mark.slow
def test_default_fast_path_matches_eager_torch_on_a_real_clip(
    shared_data: Path, tmp_path: Path
) -> None:
    video = shared_data / "layered" / "reflection__Xue__00000_Input.mp4"  # 5 frames, 566x360
    fast = _layers("auto", video, tmp_path / "fast")
    eager = _layers("torch", video, tmp_path / "eager")
    # on_layers gets the layers at the processing size (a 128-px short side): what the model made
    assert fast.shape == eager.shape and fast.shape[-2:] == (128, 201)
    levels = (fast.clamp(0, 1) - eager.clamp(0, 1)).abs() * 255
    assert levels.mean() < MEAN_LEVELS and levels.max() <= MAX_LEVELS, (
        float(levels.mean()),
        float(levels.max()),
    )
