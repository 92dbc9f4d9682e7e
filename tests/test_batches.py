"""Training batches (data/batches.py): the clips and blends of each step are a function of the seed,
the rank and the step, exactly as the trainer drew them before they had their own module."""

from __future__ import annotations

import pytest
import torch

from centrifuge.config import load_config
from centrifuge.data.batches import clip_batches, clip_spec, mix_batch
from centrifuge.data.folder import RandomClips
from centrifuge.data.index import VideoEntry


class CodedVideos:
    """A clip source whose pixels say where they come from: channel 0 holds ``1000 * video +
    frame``, channels 1 and 2 the row and column in the video (so a clip names its draw)."""

    def __init__(self, n: int = 5) -> None:
        self.entries = [
            VideoEntry(f"/v{i}.mp4", 10 + 3 * i, 25.0, 40, 36, f"c{i % 2}", 0, 0.0)
            for i in range(n)
        ]

    def video_shape(self, video: int) -> tuple[int, int, int]:
        e = self.entries[video]
        return (e.frames, e.height, e.width)

    def read(
        self, video: int, frames: torch.Tensor, top: int, left: int, size: int
    ) -> torch.Tensor:
        t = len(frames)
        c0 = (video * 1000 + frames).float().reshape(t, 1, 1).expand(t, size, size)
        c1 = (top + torch.arange(size)).float().reshape(1, size, 1).expand(t, size, size)
        c2 = (left + torch.arange(size)).float().reshape(1, 1, size).expand(t, size, size)
        return torch.stack([c0, c1, c2])  # [C, T, S, S]


def _describe(clip: torch.Tensor) -> str:
    """``"v3 t13-16 y12 x17 flip"``: video, frames, crop corner and flip of a coded clip."""
    code, rows, cols = clip[0, :, 0, 0].long().tolist(), clip[1], clip[2]
    video, frames = code[0] // 1000, [c % 1000 for c in code]
    consecutive = frames == list(range(frames[0], frames[0] + len(frames)))
    span = f"{frames[0]}-{frames[-1]}" if consecutive else ",".join(map(str, frames))
    flip = bool(cols[0, 0, 0] > cols[0, 0, -1])
    text = f"v{video} t{span} y{int(rows[0, 0, 0])} x{int(cols[0, 0].min())}"
    return text + (" flip" if flip else "")


def _describe_all(clips: torch.Tensor) -> list:
    if clips.ndim == 4:
        return _describe(clips)
    return [_describe_all(c) for c in clips]


SETTINGS = {
    "plain": ["train.seed=3", "data.alpha_range=[0.2,0.8]"],
    "three": ["train.seed=5", "data.n_layers=3"],
    "one_frozen": ["train.seed=1", "data.one_frozen=0.5"],
    "same_class": ["train.seed=2", "data.same_class=true"],
    "frozen": ["train.seed=4", "data.frozen=true"],
}
SMALL = ["data.clip_len=4", "data.crop=8", "train.batch_size=2", "data.workers=0"]

# Recorded from Trainer._batches and Trainer._mix at commit 241279b, before this module existed:
# steps 4 and 5 on rank 1, as (clips, layers, weights) per step.
RECORDED = {
    "plain": [
        (
            ["v4 t2-5 y0 x25", "v0 t5-8 y2 x8 flip", "v3 t9-12 y17 x18", "v2 t8-11 y9 x0"],
            [["v3 t9-12 y17 x18", "v4 t2-5 y0 x25"], ["v0 t5-8 y2 x8 flip", "v2 t8-11 y9 x0"]],
            [[0.408118, 0.591882], [0.326799, 0.673201]],
        ),
        (
            ["v1 t5-8 y8 x25", "v2 t11-14 y9 x14 flip", "v1 t3-6 y2 x23 flip", "v2 t10-13 y6 x31"],
            [
                ["v2 t11-14 y9 x14 flip", "v2 t10-13 y6 x31"],
                ["v1 t5-8 y8 x25", "v1 t3-6 y2 x23 flip"],
            ],
            [[0.744658, 0.255342], [0.369081, 0.630919]],
        ),
    ],
    "three": [
        (
            [
                "v0 t6-9 y0 x32",
                "v0 t2-5 y23 x3",
                "v3 t4-7 y10 x2 flip",
                "v1 t7-10 y0 x26",
                "v4 t16-19 y20 x17",
                "v4 t11-14 y24 x7",
            ],
            [
                ["v4 t16-19 y20 x17", "v0 t6-9 y0 x32", "v0 t2-5 y23 x3"],
                ["v4 t11-14 y24 x7", "v3 t4-7 y10 x2 flip", "v1 t7-10 y0 x26"],
            ],
            [[0.333333, 0.333333, 0.333333], [0.333333, 0.333333, 0.333333]],
        ),
        (
            [
                "v0 t6-9 y20 x16 flip",
                "v1 t1-4 y25 x6",
                "v1 t7-10 y10 x26",
                "v2 t6-9 y0 x20",
                "v2 t10-13 y13 x23",
                "v1 t5-8 y10 x0",
            ],
            [
                ["v1 t7-10 y10 x26", "v2 t6-9 y0 x20", "v1 t1-4 y25 x6"],
                ["v2 t10-13 y13 x23", "v1 t5-8 y10 x0", "v0 t6-9 y20 x16 flip"],
            ],
            [[0.333333, 0.333333, 0.333333], [0.333333, 0.333333, 0.333333]],
        ),
    ],
    "one_frozen": [
        (
            ["v3 t13-16 y12 x17", "v1 t1-4 y2 x10", "v4 t0-3 y16 x1 flip", "v4 t15-18 y28 x5"],
            [
                ["v3 t13-16 y12 x17", "v1 t1-4 y2 x10"],
                ["v4 t1,1,1,1 y16 x1 flip", "v4 t15-18 y28 x5"],
            ],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
        (
            ["v3 t3-6 y6 x5 flip", "v0 t5-8 y14 x13", "v4 t12-15 y21 x13", "v3 t7-10 y12 x27 flip"],
            [
                ["v3 t4,4,4,4 y6 x5 flip", "v3 t7-10 y12 x27 flip"],
                ["v4 t12-15 y21 x13", "v0 t5-8 y14 x13"],
            ],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
    ],
    "frozen": [
        (
            [
                "v0 t6,6,6,6 y14 x27 flip",
                "v1 t12,12,12,12 y8 x7 flip",
                "v0 t6,6,6,6 y23 x30 flip",
                "v4 t11,11,11,11 y28 x1 flip",
            ],
            [
                ["v1 t12,12,12,12 y8 x7 flip", "v4 t11,11,11,11 y28 x1 flip"],
                ["v0 t6,6,6,6 y14 x27 flip", "v0 t6,6,6,6 y23 x30 flip"],
            ],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
        (
            [
                "v2 t6,6,6,6 y2 x20",
                "v0 t6,6,6,6 y18 x19 flip",
                "v2 t4,4,4,4 y24 x25 flip",
                "v4 t4,4,4,4 y4 x21 flip",
            ],
            [
                ["v4 t4,4,4,4 y4 x21 flip", "v2 t4,4,4,4 y24 x25 flip"],
                ["v2 t6,6,6,6 y2 x20", "v0 t6,6,6,6 y18 x19 flip"],
            ],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
    ],
    "same_class": [
        (
            [
                ["v2 t10-13 y5 x18", "v0 t0-3 y7 x26 flip"],
                ["v4 t6-9 y21 x8 flip", "v0 t3-6 y14 x27 flip"],
            ],
            [
                ["v2 t10-13 y5 x18", "v0 t0-3 y7 x26 flip"],
                ["v4 t6-9 y21 x8 flip", "v0 t3-6 y14 x27 flip"],
            ],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
        (
            [["v0 t6-9 y23 x6", "v4 t4-7 y8 x18"], ["v3 t12-15 y19 x10", "v1 t7-10 y10 x15"]],
            [["v0 t6-9 y23 x6", "v4 t4-7 y8 x18"], ["v3 t12-15 y19 x10", "v1 t7-10 y10 x15"]],
            [[0.5, 0.5], [0.5, 0.5]],
        ),
    ],
}


def _stream(config, start_step: int):
    dc = config.data
    ds = RandomClips(
        CodedVideos(),
        clip_spec(dc),
        seed=config.train.seed,
        rank=1,
        frozen=dc.frozen,
        group=dc.n_layers if dc.same_class else None,
        same_class=dc.same_class,
    )
    return clip_batches(ds, config, start_step=start_step, device=torch.device("cpu"))


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_batches_and_blends_are_those_the_trainer_drew_before_the_split(case: str) -> None:
    config = load_config("tiny", [*SMALL, *SETTINGS[case]])
    stream = _stream(config, start_step=4)
    for step, (clips_seen, layers_seen, weights_seen) in zip((4, 5), RECORDED[case]):
        clips = next(stream)
        layers, mixture, weights = mix_batch(
            clips, config.data, seed=config.train.seed, rank=1, step=step
        )
        assert _describe_all(clips) == clips_seen
        assert _describe_all(layers) == layers_seen
        assert torch.allclose(weights, torch.tensor(weights_seen), atol=1e-6)
        expected = (layers * weights[:, :, None, None, None, None]).sum(1)
        assert torch.allclose(mixture, expected)


def test_a_stream_started_at_a_step_continues_one_started_at_zero() -> None:
    config = load_config("tiny", [*SMALL, *SETTINGS["plain"]])
    whole = _stream(config, start_step=0)
    batches = [next(whole) for _ in range(3)]
    assert torch.equal(next(_stream(config, start_step=2)), batches[2])
    assert not torch.equal(batches[1], batches[2])


def test_worker_processes_serve_the_same_batches() -> None:
    config = load_config("tiny", [*SMALL, *SETTINGS["plain"]])
    served = load_config("tiny", [*SMALL, *SETTINGS["plain"], "data.workers=1"])
    assert served.data.workers == 1
    direct, loader = _stream(config, start_step=3), _stream(served, start_step=3)
    for _ in range(2):
        assert torch.equal(next(direct), next(loader))
