"""``separate()`` and ``Separator``: window and tile alignment, cross-fade, bounded memory, the
size plan, and every forward through the engine's runner."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch

from centrifuge import Separator, separate
from centrifuge.inference.separator import SizePlan
from centrifuge.video.clips import sliding_windows
from conftest import ScaledCopies, random_frames

SCALES = (0.25, 0.75)


class PermutingModel(torch.nn.Module):
    """Emits ``scale * mixture`` for each scale, in a different order on every call.

    Shape: ``[B, C, T, H, W]`` -> ``[B, N, C, T, H, W]`` with ``N = len(scales)``.
    """

    def __init__(self, scales: tuple[float, ...] = SCALES) -> None:
        super().__init__()
        self.scales = scales
        self.n_outputs = len(scales)
        self.stride = (8, 32, 32)
        self.orders = list(itertools.permutations(range(len(scales))))
        self.calls = 0

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        order = self.orders[self.calls % len(self.orders)]
        self.calls += 1
        return torch.stack([self.scales[i] * mixture for i in order], dim=1)


def CopyModel() -> ScaledCopies:  # noqa: N802 (a fake model's name)
    """Copies its input to every output: a perfect cross-fade gives the input back."""
    return ScaledCopies((1.0, 1.0))


def _assert_scaled_layers(out: torch.Tensor, frames: torch.Tensor, scales) -> None:
    assert out.shape == (len(scales), *frames.shape)
    for layer, scale in zip(out, scales):
        torch.testing.assert_close(layer, scale * frames, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("clip_len", "overlap"), [(8, 2), (16, 8), (5, 4), (7, 0), (9, 1), (64, 8)]
)
def test_layer_order_is_stable_when_the_model_swaps_outputs_between_windows(
    clip_len: int, overlap: int
) -> None:
    frames = random_frames(37, 19, 23)  # odd T, H, W; (64, 8) is one window longer than the video
    model = PermutingModel()
    out = separate(model, frames, clip_len=clip_len, overlap=overlap)
    _assert_scaled_layers(out, frames, SCALES)
    hop = clip_len - overlap
    assert model.calls == 1 + max(0, -(-(37 - clip_len) // hop))  # one call per window


def test_three_layers_stay_in_order_when_the_model_permutes_them() -> None:
    frames = random_frames(30, 17, 21)
    out = separate(PermutingModel((0.2, 0.5, 0.9)), frames, clip_len=6, overlap=2)
    _assert_scaled_layers(out, frames, (0.2, 0.5, 0.9))


@pytest.mark.parametrize(("clip_len", "overlap"), [(8, 3), (10, 0), (13, 12)])
def test_copy_model_reconstructs_the_input_exactly(clip_len: int, overlap: int) -> None:
    frames = random_frames(31, 15, 26)
    out = separate(CopyModel(), frames, clip_len=clip_len, overlap=overlap)
    for layer in out:
        torch.testing.assert_close(layer, frames, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(45, 70), (20, 57)])
def test_spatial_tiles_keep_layer_order_and_reconstruct(height: int, width: int) -> None:
    frames = random_frames(11, height, width)
    model = PermutingModel((0.2, 0.5, 0.9))
    out = separate(model, frames, clip_len=6, overlap=2, tile=24, tile_overlap=8)
    assert model.calls > 2 * 3  # several tiles per window
    _assert_scaled_layers(out, frames, (0.2, 0.5, 0.9))
    copied = separate(CopyModel(), frames, clip_len=6, overlap=2, tile=24, tile_overlap=8)
    for layer in copied:
        torch.testing.assert_close(layer, frames, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("tile", "tile_overlap"), [(16, 16), (16, 32), (24, 0)])
def test_tiles_that_cannot_be_aligned_are_refused(tile: int, tile_overlap: int) -> None:
    with pytest.raises(ValueError, match="tile"):
        Separator(CopyModel(), tile=tile, tile_overlap=tile_overlap)


def test_progress_reaches_the_total() -> None:
    seen: list[tuple[int, int]] = []
    separate(
        CopyModel(),
        random_frames(21, 8, 8),
        clip_len=8,
        overlap=3,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (21, 21)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_stream_buffers_at_most_one_window_of_a_long_video() -> None:
    """2,000 frames from a reader: the stream holds at most one window it has not handed back,
    plus the windows decoded ahead (two) and the one being cut."""
    total, clip_len, overlap = 2000, 32, 8
    frames = random_frames(total, 4, 4)
    consumed = 0

    class Reader:  # a VideoReader's windows, counting the frames decoded
        def windows(self, clip_len: int, overlap: int) -> Iterator[tuple[int, torch.Tensor]]:
            def decoded() -> Iterator[torch.Tensor]:
                nonlocal consumed
                for t in range(total):
                    consumed = t + 1
                    yield frames[:, t]

            for start, window in sliding_windows(decoded(), clip_len, overlap):
                yield start, torch.stack(window, dim=1)

    sep = Separator(PermutingModel(), clip_len=clip_len, overlap=overlap)
    next_frame = 0
    for start, layers, inputs in sep.stream(Reader()):
        t = layers.shape[2]
        assert start == next_frame and inputs.shape[1] == t <= clip_len
        assert consumed - (start + t) <= overlap + 3 * clip_len  # frames pending or decoded ahead
        expected = frames[:, start : start + t]
        torch.testing.assert_close(layers[0], 0.25 * expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(inputs, expected)
        next_frame = start + t
    assert next_frame == total


def test_stream_of_a_tensor_equals_separate() -> None:
    frames = random_frames(29, 9, 10)
    sep = Separator(PermutingModel(), clip_len=8, overlap=3)
    chunks = [(start, layers, inputs) for start, layers, inputs in sep.stream(frames)]
    assert [s for s, _, _ in chunks] == sorted({s for s, _, _ in chunks})
    torch.testing.assert_close(torch.cat([i for _, _, i in chunks], 1), frames)
    torch.testing.assert_close(
        torch.cat([x for _, x, _ in chunks], 2),
        separate(PermutingModel(), frames, clip_len=8, overlap=3),
        atol=1e-6,
        rtol=0,
    )


class ResidualCopy(torch.nn.Module):
    """A residual model whose differences are zero, plus a constant on the second layer."""

    n_outputs, stride, residual = 2, (8, 32, 32), True

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(mixture.shape))
        return torch.stack([mixture, mixture + 0.1], dim=1)


def test_auto_size_runs_a_residual_model_at_half_size_and_keeps_the_input_detail() -> None:
    frames = random_frames(9, 240, 320)  # noise: all detail, which a resized layer would lose
    model = ResidualCopy()
    sep = Separator(model, clip_len=9, overlap=0, size="auto")
    # layers made at full size (the differences are added to it), processed at a 128-px short side
    assert sep.plan(240, 320) == SizePlan(output=(240, 320), process=(128, 171), side=128)
    assert sep.plan(720, 1280).process == (128, 228)  # the same short side for any input
    assert sep.plan(100, 200) == SizePlan((100, 200), (100, 200), "native")  # already small
    layers = sep.window(frames)
    assert {s[-2:] for s in model.shapes} == {(128, 171)}  # run at its own size, not padded
    torch.testing.assert_close(layers[0], frames, atol=1e-5, rtol=0)  # every pixel kept
    torch.testing.assert_close(layers[1], frames + 0.1, atol=1e-5, rtol=0)


def test_auto_size_leaves_other_models_at_native_size() -> None:
    sep = Separator(CopyModel(), size="auto")
    assert sep.plan(240, 320) == SizePlan((240, 320), (240, 320), "native")


def test_a_given_size_is_decoded_at_and_reported_as_given() -> None:
    sep = Separator(CopyModel(), size=120)
    assert sep.plan(240, 320) == SizePlan((120, 160), (120, 160), 120)
    assert Separator(CopyModel(), size=None).plan(240, 320).side == "native"
    for bad in (16, "small", "0"):
        with pytest.raises(ValueError, match="size must be"):
            Separator(CopyModel(), size=bad)


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.gpu),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["fake", "tiny"])
def test_every_forward_of_a_separator_goes_through_its_runner(device: str, kind: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from centrifuge.models import build_model

    model = CopyModel() if kind == "fake" else build_model("tiny").eval()
    inside, calls = [False], []

    def hook(module: torch.nn.Module, args: tuple) -> None:  # copied along with the model
        assert inside[0], "the model ran outside the engine's runner"
        calls.append(args[0].device.type)

    model.register_forward_pre_hook(hook)
    sep = Separator(
        model, clip_len=8, overlap=2, tile=64, tile_overlap=16, device=device, backend="torch"
    )
    runner = sep.runner

    def through_runner(x: torch.Tensor) -> torch.Tensor:
        inside[0] = True
        try:
            return runner(x)
        finally:
            inside[0] = False

    sep.runner = through_runner
    frames = random_frames(20, 40, 100)  # 3 windows of 1 x 2 tiles
    out = torch.cat([chunk for _, chunk, _ in sep.stream(frames)], dim=2)
    assert out.shape == (2, *frames.shape) and out.device.type == "cpu"
    assert calls == [torch.device(device).type] * 6
