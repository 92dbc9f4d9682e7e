from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from centrifuge.cli import main
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.evaluate import evaluate, score_blends
from centrifuge.losses import video_loss
from centrifuge.metrics import psnr, ssim
from centrifuge.pretrained import load_model, untrained_like

DESIGN_KEYS = {"model", "pairs", "seed", "clip", "variant", "loss", "psnr_db", "ssim", "diversity"}


def test_ssim_matches_scikit_image() -> None:
    a = torch.rand(3, 2, 40, 50)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    ref = np.mean(
        [
            structural_similarity(
                a[c, t].numpy(),
                b[c, t].numpy(),
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=1.0,
            )
            for c in range(3)
            for t in range(2)
        ]
    )
    assert ssim(b, a).item() == pytest.approx(ref, abs=1e-5)
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-6)


def test_psnr_of_a_known_error() -> None:
    a = torch.full((3, 2, 8, 8), 0.5)
    assert psnr(a + 0.1, a).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01


def test_evaluate_is_deterministic_and_identity_has_its_closed_form(shared_data: Path) -> None:
    model = load_model("tiny")
    kwargs = {"pairs": 3, "seed": 5, "clip_len": 8, "size": 32, "batch_size": 2}
    a = evaluate(model, shared_data / "val", **kwargs)
    b = evaluate(model, shared_data / "val", **kwargs)
    assert a.to_dict() | {"seconds": 0} == b.to_dict() | {"seconds": 0}
    entries = scan_folder(shared_data / "val")
    specs = validation_pairs(entries, 3, 5, 8)
    closed = np.mean([video_loss(x, y).item() for x, y in iter_pairs(entries, specs, 8, 32)])
    assert a.loss["identity"] == pytest.approx(closed, rel=1e-5)
    assert a.clip == [8, 32, 32] and a.pairs == 3 and len(a.per_pair_loss) == 3


def test_untrained_baseline_is_reported(shared_data: Path) -> None:
    model = load_model("tiny")
    report = evaluate(
        model,
        shared_data / "val",
        pairs=2,
        clip_len=8,
        size=32,
        untrained=untrained_like(model, seed=1),
    )
    assert set(report.untrained) == {"loss", "psnr_db", "ssim"}
    assert "untrained" in report.table()


@pytest.mark.parametrize("variant", ["frozen", "one-frozen", "colour:green"])
def test_variants_run(shared_data: Path, variant: str) -> None:
    report = evaluate(
        load_model("tiny"), shared_data / "val", pairs=2, clip_len=8, size=32, variant=variant
    )
    assert report.variant == variant and np.isfinite(report.loss["model"])


def test_cli_writes_every_design_key(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "e.json"
    code = main(
        [
            "evaluate",
            "--data",
            str(shared_data / "val"),
            "--model",
            "tiny",
            "--pairs",
            "2",
            "--clip-len",
            "8",
            "--size",
            "32",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) >= DESIGN_KEYS
    for key in ("loss", "psnr_db", "ssim"):
        assert set(data[key]) == {"model", "identity", "written"}
    assert data["clip"] == [8, 32, 32]
    assert "identity" in capsys.readouterr().out


def test_cli_rejects_a_folder_without_videos(tmp_path: Path) -> None:
    assert main(["evaluate", "--data", str(tmp_path), "--model", "tiny"]) == 2


def test_the_written_score_is_the_one_the_layer_choice_implies() -> None:
    torch.manual_seed(0)
    layers = 0.2 + 0.6 * torch.rand(3, 2, 3, 8, 32, 32)  # [B, K, C, T, H, W]
    d = 0.1 * torch.randn(3, 3, 8, 32, 32)
    l1, l2 = layers[:, 0], layers[:, 1]
    spread = lambda mixture: torch.stack([l1 + d, l2 - d, l1 - d, l2 + d], dim=1)  # noqa: E731
    both = lambda mixture: torch.stack([l2, l1], dim=1)  # noqa: E731
    scores = score_blends({"spread": spread, "both": both}, layers)
    assert set(scores) == {"spread", "spread/written", "both", "both/written", "identity"}
    # the cluster means {0, 2} and {1, 3} are the layers exactly: the oracle's best 2 are not
    assert scores["spread/written"].loss.max() < 1e-5 < scores["spread"].loss.min()
    assert scores["spread/written"].psnr_db.min() > scores["spread"].psnr_db.max()
    # two outputs: the written layers are the outputs, in any order
    torch.testing.assert_close(scores["both/written"].loss, scores["both"].loss)
    assert scores["both/written"].loss.max() < 1e-5
