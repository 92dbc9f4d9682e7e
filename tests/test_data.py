from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from centrifuge.data import (
    COLOURS,
    ClipBank,
    ClipSpec,
    RandomClips,
    VideoFolder,
    blend,
    colour_layer,
    freeze_clips,
    make_mixtures,
    scan_folder,
)
from centrifuge.data import index as index_module
from centrifuge.data.blend import mixture_weights
from centrifuge.data.validation import iter_pairs, make_layers, validation_pairs
from centrifuge.errors import CentrifugeError, DataError
from conftest import random_frames, write_test_video


@pytest.fixture
def kinetics_tree(tmp_path: Path) -> Path:
    """root/<class>/<video>.mp4 with 2 classes x 2 videos, plus one short video."""
    root = tmp_path / "kinetics"
    for c, label in enumerate(["archery", "juggling"]):
        (root / label).mkdir(parents=True)
        for v in range(2):
            seed = 10 * c + v
            write_test_video(root / label / f"v{v}.mp4", random_frames(20 + 5 * v, 40, 56, seed))
    write_test_video(root / "juggling" / "short.mp4", random_frames(5, 40, 56, 99))
    return root


def test_scan_finds_videos_with_class_labels(kinetics_tree: Path) -> None:
    entries = scan_folder(kinetics_tree)
    assert len(entries) == 5
    assert {e.label for e in entries} == {"archery", "juggling"}
    assert {e.frames for e in entries} == {20, 25, 5}


def test_second_scan_uses_the_cache(kinetics_tree: Path, monkeypatch) -> None:
    first = scan_folder(kinetics_tree)

    def boom(path):
        raise AssertionError(f"probed {path} again")

    monkeypatch.setattr(index_module, "probe_video", boom)
    assert scan_folder(kinetics_tree) == first


def test_scan_skips_unreadable_files_and_rejects_empty_folders(tmp_path: Path) -> None:
    (tmp_path / "junk.mp4").write_text("no")
    with pytest.raises(DataError):
        scan_folder(tmp_path)
    with pytest.raises(DataError):
        scan_folder(tmp_path / "missing")


def test_scan_real_training_folder(shared_data: Path) -> None:
    """Every training video of the data's manifest is found, with its frame count."""
    with open(shared_data / "MANIFEST.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    entries = scan_folder(shared_data / "train")
    assert len(entries) == len(rows) > 0
    assert sum(e.frames for e in entries) == sum(int(r["frames"]) for r in rows)


def test_random_clips_have_the_paper_geometry_and_are_deterministic(kinetics_tree: Path) -> None:
    spec = ClipSpec(clip_len=8, crop=32)
    assert spec.short_side == 37  # 1.15 x 32, rounded up
    source = VideoFolder(kinetics_tree, short_side=spec.short_side)
    ds = RandomClips(source, spec, seed=3)
    clip = ds[7]
    assert clip.shape == (3, 8, 32, 32) and clip.dtype == torch.float32
    assert torch.equal(clip, ds[7])
    assert not torch.equal(ds[7], RandomClips(source, spec, seed=3, rank=1)[7])


def test_short_videos_bounce_instead_of_failing(tmp_path: Path) -> None:
    write_test_video(tmp_path / "a.mp4", random_frames(3, 40, 40))
    spec = ClipSpec(clip_len=8, crop=32, flip=False)
    source = VideoFolder(tmp_path, short_side=spec.short_side)
    clip = RandomClips(source, spec)[0]
    assert clip.shape == (3, 8, 32, 32)
    diffs = [(clip[:, i] - clip[:, i + 2]).abs().max().item() for i in range(6)]
    assert min(diffs) == 0.0  # forward-backward playback repeats frames


def test_clip_bank_serves_the_same_clips_as_decoding(kinetics_tree: Path, tmp_path: Path) -> None:
    spec = ClipSpec(clip_len=8, crop=32, stride=2)
    folder = VideoFolder(kinetics_tree, short_side=spec.short_side)
    bank = ClipBank.from_entries(folder.entries, spec.short_side, folder=tmp_path / "bank")
    again = ClipBank.from_entries(folder.entries, spec.short_side, folder=tmp_path / "bank")
    assert len(list((tmp_path / "bank").glob("*.u8"))) == 1 and again.nbytes == bank.nbytes
    direct, banked = RandomClips(folder, spec, seed=1), RandomClips(bank, spec, seed=1)
    for i in range(6):
        assert torch.equal(direct[i], banked[i])


def test_frozen_clips_have_no_motion(kinetics_tree: Path) -> None:
    spec = ClipSpec(clip_len=8, crop=32)
    clip = RandomClips(VideoFolder(kinetics_tree, short_side=37), spec, frozen=True)[2]
    assert torch.equal(clip, clip[:, :1].expand_as(clip))


def test_same_class_groups_draw_from_one_label(kinetics_tree: Path) -> None:
    spec = ClipSpec(clip_len=4, crop=32, flip=False)
    folder = VideoFolder(kinetics_tree, short_side=37)
    ds = RandomClips(folder, spec, group=2, same_class=True)
    assert ds[0].shape == (2, 3, 4, 32, 32)
    unlabeled = VideoFolder(
        None,
        short_side=37,
        entries=[e.__class__(**{**e.__dict__, "label": None}) for e in folder.entries],
    )
    with pytest.raises(DataError):
        RandomClips(unlabeled, spec, group=2, same_class=True)


def test_blend_is_the_weighted_mean() -> None:
    layers = torch.rand(4, 2, 3, 2, 5, 5)
    w = torch.tensor([[0.3, 0.7]]).expand(4, 2)
    assert torch.allclose(blend(layers, w), 0.3 * layers[:, 0] + 0.7 * layers[:, 1])
    assert torch.allclose(blend(layers), layers.mean(1))


def test_make_mixtures_draws_new_partners_each_call() -> None:
    clips = torch.arange(8.0).reshape(8, 1, 1, 1, 1).expand(8, 3, 2, 4, 4)
    g = torch.Generator().manual_seed(0)
    layers1, mix1, w1 = make_mixtures(clips, 2, generator=g)
    layers2, _, _ = make_mixtures(clips, 2, generator=g)
    assert layers1.shape == (4, 2, 3, 2, 4, 4) and mix1.shape == (4, 3, 2, 4, 4)
    assert torch.allclose(w1, torch.full((4, 2), 0.5))
    assert sorted(layers1[:, :, 0, 0, 0, 0].flatten().tolist()) == list(range(8))
    assert not torch.equal(layers1, layers2)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_mixture_weights_sum_to_one(k: int) -> None:
    g = torch.Generator().manual_seed(1)
    w = mixture_weights(16, k, (0.25, 0.75), g)
    assert w.shape == (16, k) and torch.allclose(w.sum(1), torch.ones(16))
    if k == 2:
        assert ((w >= 0.25) & (w <= 0.75)).all()
    with pytest.raises(CentrifugeError):
        mixture_weights(2, k, 1.5)


def test_freeze_and_colour_layers() -> None:
    clips = torch.rand(3, 3, 6, 4, 4)
    frozen = freeze_clips(clips, which=torch.tensor([True, False, True]))
    assert torch.equal(frozen[1], clips[1])
    assert torch.equal(frozen[0], frozen[0][:, :1].expand_as(frozen[0]))
    assert len(COLOURS) == 8
    magenta = colour_layer("magenta", clips[0])
    assert magenta.shape == clips[0].shape and magenta[:, 0, 0, 0].tolist() == [1.0, 0.0, 1.0]


def test_validation_pairs_are_deterministic_and_distinct(shared_data: Path) -> None:
    entries = scan_folder(shared_data / "val")
    a = validation_pairs(entries, 16, seed=0, clip_len=32)
    assert a == validation_pairs(entries, 16, seed=0, clip_len=32)
    assert a != validation_pairs(entries, 16, seed=1, clip_len=32)
    assert all(p.video_a != p.video_b for p in a)
    clips = next(iter_pairs(entries, a[:1], 8, 64))
    assert clips[0].shape == (3, 8, 64, 64)
    layers = make_layers(*clips, "one-frozen")
    assert torch.equal(layers[0], layers[0][:, :1].expand_as(layers[0]))
    assert torch.equal(make_layers(*clips, "colour:red")[1, :, 0, 0, 0], torch.tensor([1.0, 0, 0]))
    assert np.isclose(make_layers(*clips, "frozen")[:, :, 1:].std(dim=2).max().item(), 0.0)


def test_numbered_frames_are_one_video_and_stills_are_each_one(tmp_path: Path) -> None:
    from PIL import Image

    from centrifuge.data.index import find_videos, is_frame_sequence

    seq, stills = tmp_path / "seq", tmp_path / "stills"
    seq.mkdir()
    stills.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(seq / f"img_{i:03d}.png")
    for name in ("beach.jpg", "window_reflection.png"):
        Image.new("RGB", (8, 8)).save(stills / name)
    assert is_frame_sequence(["a_1.png", "a_2.png"]) and not is_frame_sequence(["a.png", "b.png"])
    found = find_videos(tmp_path)
    assert seq in found and stills not in found
    assert stills / "beach.jpg" in found and stills / "window_reflection.png" in found
