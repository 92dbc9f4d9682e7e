from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from centrifuge.cli import main
from centrifuge.downstream import downstream_accuracy, load_classifier, pair_score
from centrifuge.pretrained import load_model
from conftest import write_test_video

CLASSES = ["red", "green", "blue"]


@pytest.mark.parametrize(
    ("predictions", "labels", "score"),
    [
        ((0, 1), (0, 1), 1.0),
        ((1, 0), (0, 1), 1.0),
        ((0, 2), (0, 1), 0.5),
        ((2, 0), (0, 1), 0.5),
        ((2, 2), (0, 1), 0.0),
        ((0, 0), (0, 1), 0.5),
        ((1, 1), (1, 1), 1.0),
    ],
)
def test_pair_score_is_one_half_or_zero(predictions, labels, score) -> None:
    assert pair_score(predictions, labels) == score


def _clip(colour: int, t: int, seed: int) -> torch.Tensor:
    """A moving textured clip whose dominant channel is ``colour``: [3, T, H, W] in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    texture = torch.rand(1, t, 24, 24, generator=g) * 0.3
    clip = texture.expand(3, -1, -1, -1).clone()
    clip[colour] += 0.6
    return clip.roll(shifts=seed % 5, dims=-1).clamp(0, 1)


class ColourNet(nn.Module):
    """A small video classifier: 3D conv, global average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path]:
    """A labelled folder of generated clips and a TorchScript classifier trained on such clips."""
    root = tmp_path_factory.mktemp("labelled")
    for c, name in enumerate(CLASSES):
        (root / name).mkdir()
        for v in range(2):
            write_test_video(root / name / f"v{v}.mp4", _clip(c, 12, 10 * c + v))
    torch.manual_seed(0)
    net = ColourNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for step in range(60):
        labels = torch.arange(len(CLASSES)).repeat(2)
        clips = torch.stack([_clip(int(c), 8, 100 + step * 7 + i) for i, c in enumerate(labels)])
        loss = nn.functional.cross_entropy(net(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = root.parent / "colournet.pt2"
    program = torch.export.export(net.eval(), (torch.rand(1, 3, 8, 24, 24),))
    torch.export.save(program, str(path))
    return root, path


def test_downstream_protocol_wiring(labelled) -> None:
    root, path = labelled
    classifier = load_classifier(path)
    scores = downstream_accuracy(
        classifier, load_model("tiny"), root, classes=CLASSES, pairs=6, clip_len=8, size=24
    )
    assert scores["pairs"] == 6
    assert scores["clean"] == 1.0  # the classifier is right on clean clips
    assert scores["mixed"] >= 0.5  # top-2 on a blend of two colours finds at least one
    assert 0.0 <= scores["separated"] <= 1.0


def _evaluate(root: Path, pairs: int, *extra: str | Path) -> int:
    """``centrifuge evaluate`` of the untrained tiny model on 8x24x24 blends of ``root``."""
    args = ["--model", "tiny", "--pairs", str(pairs), "--clip-len", "8", "--size", "24"]
    return main(["evaluate", "--data", str(root), *args, *map(str, extra)])


def test_evaluate_cli_adds_downstream_scores(labelled, tmp_path: Path) -> None:
    root, path = labelled
    out = tmp_path / "e.json"
    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CLASSES))
    code = _evaluate(root, 4, "--classifier", path, "--classes", classes, "--json", out)
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data["downstream"]) == {"mixed", "separated", "clean", "pairs"}
    assert data["downstream"]["clean"] == 1.0


def test_bad_classifier_file_is_a_clear_error(labelled, tmp_path: Path) -> None:
    root, _ = labelled
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert _evaluate(root, 2, "--classifier", bad) == 2
