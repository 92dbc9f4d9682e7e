"""Shared fixtures: seeding, a private cache folder, generated videos, the real clips and fake
models (:class:`ScaledCopies`, :func:`serve_as_model`)."""

from __future__ import annotations

import gc
import os
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

# The real clips: $CENTRIFUGE_TEST_DATA, else ../shared/data beside the checkout.
SHARED_DATA = Path(
    os.environ.get(
        "CENTRIFUGE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    # what a test leaves (OpenVINO runners, video containers) is freed now, in the main thread,
    # not by a garbage collection that a later test's background thread happens to run
    gc.collect()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Indexes and clip banks go to a temporary cache, never to the user's or beside the data.

    The command line runs models in plain PyTorch unless a test asks for an engine (its default
    ``--backend`` is ``$CENTRIFUGE_BACKEND``, which the library never reads; tests that build a
    ``Separator`` pass ``backend="torch"``): exporting every tiny test model to OpenVINO would
    only cost time, and OpenVINO stays out of the xdist workers.
    """
    mp = pytest.MonkeyPatch()
    mp.setenv("CENTRIFUGE_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("CENTRIFUGE_BACKEND", "torch")
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "train").is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


# Short real clips (16 to 32 frames, 256 x 256): their clip bank builds in about a second.
TRAIN_VIDEOS = [
    "anyv2v__ballet_street",
    "anyv2v__couple_affection",
    "anyv2v__kitten_wooden_floor",
    "anyv2v__man_walking",
    "anyv2v__old_man_exercise",
    "vid2vid-zero__cow_walking",
    "vid2vid-zero__lion_roaring",
    "flatten__trucks_race",
]


@pytest.fixture(scope="session")
def train_clips(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder linking a few real training videos, with its clip bank for 32-px crops already in
    the cache (built once per session, and never by two processes at the same time): training
    tests need real clips, not the 27,569 frames of the whole training folder."""
    from centrifuge.data.bank import build_bank
    from centrifuge.data.folder import ClipSpec
    from centrifuge.data.index import scan_folder

    folder = tmp_path_factory.mktemp("train")
    for name in TRAIN_VIDEOS:
        (folder / f"{name}.mp4").symlink_to(shared_data / "train" / f"{name}.mp4")
    build_bank(scan_folder(folder), ClipSpec(crop=32).short_side)
    return folder


class ScaledCopies(torch.nn.Module):
    """A fake model: ``scale * mixture`` for each of ``scales``, ``[B, C, T, H, W]`` ->
    ``[B, N, C, T, H, W]`` with ``N = len(scales)``; cheap, deterministic, and it records the
    input shapes it sees. With ``swap`` the order is reversed on every other call (a model has no
    notion of layer order)."""

    stride = (8, 32, 32)

    def __init__(self, scales: tuple[float, ...] = (0.25, 0.75), *, swap: bool = False) -> None:
        super().__init__()
        self.scales, self.swap = tuple(scales), swap
        self.n_outputs = len(self.scales)
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(mixture.shape))
        pred = torch.stack([s * mixture for s in self.scales], dim=1)  # [B, N, C, T, H, W]
        return pred.flip(1) if self.swap and len(self.shapes) % 2 == 0 else pred


def serve_as_model(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module) -> torch.nn.Module:
    """Make ``model`` what ``--model`` loads from now on (the CLI imports ``load_model`` when it
    runs)."""
    import centrifuge.pretrained

    monkeypatch.setattr(centrifuge.pretrained, "load_model", lambda *args, **kwargs: model)
    return model


def random_frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random frames [3, T, H, W] in [0, 1] (smooth so that H.264 keeps them close)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, t, max(2, h // 8), max(2, w // 8), generator=g)
    up = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    return up.clamp(0, 1)


def write_test_video(
    path: Path,
    frames: torch.Tensor,
    fps: float | Fraction = 25,
    *,
    lossless: bool = True,
    audio_seconds: float = 0.0,
) -> Path:
    """Write frames [3, T, H, W] with PyAV directly (independent of the code under test)."""
    data = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
        s.width, s.height = data.shape[2], data.shape[1]
        s.pix_fmt = "rgb24" if lossless else "yuv420p"
        s.options = {"crf": "0"} if lossless else {}
        a = c.add_stream("aac", rate=44100) if audio_seconds else None
        for i, img in enumerate(data):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
        if a is not None:
            n = int(audio_seconds * 44100) // 1024
            for i in range(n):
                tone = np.sin(np.arange(1024) / 10.0 + i).astype(np.float32)[None] * 0.1
                fr = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                fr.sample_rate, fr.pts = 44100, i * 1024
                for p in a.encode(fr):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return path


@pytest.fixture
def video_file(tmp_path: Path) -> tuple[Path, torch.Tensor]:
    """A lossless 40-frame 48x64 video and its exact frames."""
    frames = (random_frames(40, 48, 64) * 255).round() / 255
    return write_test_video(tmp_path / "clip.mp4", frames), frames
