from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from centrifuge.cli import main
from centrifuge.downstream import (
    downstream_accuracy,
    load_classifier,
    pair_score,
    save_classifier,
)
from centrifuge.errors import ModelError
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


def colour_net() -> nn.Sequential:
    """A small video classifier: 3D conv, global average pool, linear."""
    return nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Linear(8, len(CLASSES)),
    )


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path]:
    """A labelled folder of generated clips and a classifier trained on such clips."""
    root = tmp_path_factory.mktemp("labelled")
    for c, name in enumerate(CLASSES):
        (root / name).mkdir()
        for v in range(2):
            write_test_video(root / name / f"v{v}.mp4", _clip(c, 12, 10 * c + v))
    torch.manual_seed(0)
    net = colour_net()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for step in range(60):
        labels = torch.arange(len(CLASSES)).repeat(2)
        clips = torch.stack([_clip(int(c), 8, 100 + step * 7 + i) for i, c in enumerate(labels)])
        loss = nn.functional.cross_entropy(net(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return root, save_classifier(net.eval(), root.parent / "colournet.safetensors")


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


# -- a classifier file never runs code (issue 13, point 1) -------------------------------------


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the loader runs code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_files(folder: Path, marker: Path) -> list[Path]:
    """Files that run code when unpickled: a torch.save zip, a raw pickle, a torch.export-style
    archive whose weights entry is that pickle, each also under a .safetensors name."""
    payload = _Payload(marker)
    files = []
    saved = folder / "evil.pt"
    torch.save({"weights": payload}, saved)
    files.append(saved)
    raw = folder / "evil.pkl"
    raw.write_bytes(pickle.dumps(payload))
    files.append(raw)
    evil = folder / "evil.pt2"  # the layout of a torch.export archive, a pickle as its weights
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("evil/archive_format", "pt2")
        archive.writestr("evil/models/model.json", "{}")
        archive.writestr("evil/data/weights/model.pt", pickle.dumps(payload))
    files.append(evil)
    for path in list(files):
        disguised = folder / f"{path.stem}_{path.suffix[1:]}.safetensors"
        disguised.write_bytes(path.read_bytes())
        files.append(disguised)
    return files


def test_pickle_payload_is_live_so_the_test_would_notice(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists()


def test_classifier_files_that_can_run_code_are_refused_and_run_none(
    labelled, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, _ = labelled
    marker = tmp_path / "code_ran"
    for path in _malicious_files(tmp_path, marker):
        with pytest.raises(ModelError, match="refused"):
            load_classifier(path)
        assert not marker.exists(), path.name
    evil = tmp_path / "evil.pt2"
    assert _evaluate(root, 2, "--classifier", evil) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(evil) in err[0] and "refused" in err[0], err
    assert not marker.exists()


def test_a_classifier_round_trips_through_safetensors(tmp_path: Path) -> None:
    net = nn.Sequential(
        nn.Conv3d(3, 4, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(4),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4, 5),
    ).eval()
    net[1].running_mean.uniform_()
    clip = torch.rand(1, 3, 4, 16, 16)
    loaded = load_classifier(save_classifier(net, tmp_path / "c.safetensors"))
    assert torch.equal(loaded(clip), net(clip))


def test_a_classifier_whose_weights_do_not_fit_its_layers_is_one_line(tmp_path: Path) -> None:
    path = save_classifier(colour_net(), tmp_path / "c.safetensors")
    tensors = load_file(str(path))
    tensors["4.weight"] = torch.zeros(7, 8)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelError, match=r"do not fit .* \(tensor 4\.weight\)"):
        load_classifier(path)
    save_file(tensors, str(path), metadata={"classifier": '[{"type": "exec", "code": "1"}]'})
    with pytest.raises(ModelError, match="unknown classifier layer"):
        load_classifier(path)
