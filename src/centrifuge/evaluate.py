"""Evaluation on fixed, seeded blends: the paper's loss, PSNR/SSIM of the matched layers, diversity.

``evaluate`` builds P blends (alpha = 0.5) of pairs of distinct videos from a folder exactly as
:mod:`centrifuge.data.validation` defines them (same folder, seed, T and PX -> same blends), runs
the model, and reports two scores of it beside the identity baseline (every output = the mixture)
and, when asked, an untrained model of the same architecture:

* ``written``: the two layers ``centrifuge separate`` writes, chosen by the same code
  (:func:`centrifuge.inference.report.written_layers`, without the answer) -- what a user gets;
* ``model``: the best K of the N outputs, matched to the true layers knowing them (an oracle: the
  paper's figure, and an upper bound of what a choice without the answer can reach).

PSNR and SSIM are averaged over the K layers matched by the loss-minimising assignment.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from centrifuge.data.blend import blend
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, make_layers, validation_pairs
from centrifuge.inference.report import written_layers
from centrifuge.losses import best_assignment, diversity, pairwise_l1_grad, reorder_layers
from centrifuge.metrics import identity_baseline, psnr, ssim
from centrifuge.utils import atomic_path

__all__ = ["WRITTEN", "Report", "ScoreTotals", "Scores", "evaluate", "score", "score_blends"]

PSNR_CAP_DB = 100.0  # identical layers (a perfect pure-colour output) count as 100 dB
WRITTEN = "/written"  # score_blends' key suffix for a predictor's written layers


@dataclass
class Report:
    """What ``centrifuge evaluate`` prints and writes (``to_json`` keeps DESIGN's keys)."""

    model: str
    pairs: int
    seed: int
    clip: list[int]
    variant: str
    loss: dict[str, float]
    psnr_db: dict[str, float]
    ssim: dict[str, float]
    diversity: float
    n_outputs: int = 0
    untrained: dict[str, float] | None = None
    downstream: dict[str, float] | None = None
    seconds: float = 0.0
    per_pair_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        for optional in ("untrained", "downstream"):
            if data[optional] is None:
                data.pop(optional)
        return data

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the report atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def table(self) -> str:
        """A readable table: loss, PSNR and SSIM of the model and the baselines."""
        rows = []
        if "written" in self.loss:
            rows.append(
                ("written", self.loss["written"], self.psnr_db["written"], self.ssim["written"])
            )
        rows.append(("best 2", self.loss["model"], self.psnr_db["model"], self.ssim["model"]))
        rows.append(
            ("identity", self.loss["identity"], self.psnr_db["identity"], self.ssim["identity"])
        )
        if self.untrained:
            rows.append(
                (
                    "untrained",
                    self.untrained["loss"],
                    self.untrained["psnr_db"],
                    self.untrained["ssim"],
                )
            )
        t, h, w = self.clip
        lines = [
            f"{self.model}: {self.pairs} blends of {self.variant} pairs, {t}x{h}x{w}, "
            f"seed {self.seed}",
            f"{'':10} {'loss':>8} {'PSNR dB':>8} {'SSIM':>6}",
        ]
        lines += [f"{n:10} {lo:8.4f} {p:8.2f} {s:6.3f}" for n, lo, p, s in rows]
        lines.append(
            "written = the layers `separate` writes; best 2 = the outputs closest to the true "
            "layers, chosen knowing them (oracle)"
        )
        ratios = [
            f"{name} {self.loss[key] / self.loss['identity']:.3f}"
            for name, key in (("written", "written"), ("best 2", "model"))
            if key in self.loss and self.loss["identity"]
        ]
        lines.append(
            f"loss / identity: {', '.join(ratios) or 'n/a'}; "
            f"diversity min_i!=j l(Oi, Oj) = {self.diversity:.4f}"
        )
        if self.downstream:
            d = self.downstream
            lines.append(
                f"downstream accuracy (1 / 0.5 / 0 per pair): mixed {d['mixed']:.3f}, "
                f"separated {d['separated']:.3f}, clean {d['clean']:.3f}"
            )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        names = [("written", "written"), ("model", "best 2 (oracle)"), ("identity", "identity")]
        rows = [
            f"| {label} | {self.loss[key]:.4f} | {self.psnr_db[key]:.2f} | {self.ssim[key]:.3f} |"
            for key, label in names
            if key in self.loss
        ]
        return "| | loss | PSNR (dB) | SSIM |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"


class Scores(NamedTuple):
    """Scores of predictions against their layers: each ``[B]`` (one per blend), or floats."""

    loss: torch.Tensor  # the paper's loss under the loss-minimising assignment
    psnr_db: torch.Tensor  # mean over the K matched layers, capped at PSNR_CAP_DB
    ssim: torch.Tensor  # mean over the K matched layers
    diversity: torch.Tensor  # min over output pairs i != j of l(O_i, O_j)


def score(pred: torch.Tensor, layers: torch.Tensor) -> Scores:
    """Per-blend :class:`Scores` of ``pred [B, N, C, T, H, W]`` against ``layers [B, K, ...]``."""
    cost, match = best_assignment(pairwise_l1_grad(pred, layers))
    matched = reorder_layers(pred, match)  # [B, K, C, T, H, W]
    p = psnr(matched, layers).clamp(max=PSNR_CAP_DB).mean(1)
    s = ssim(matched, layers).mean(1)
    return Scores(cost, p, s, diversity(pred))


Predict = Callable[[torch.Tensor], torch.Tensor]


def score_blends(predictors: dict[str, Predict], layers: torch.Tensor) -> dict[str, Scores]:
    """Blend ``layers`` with equal weights, score each predictor's output on the mixture (key
    ``name``: the best K outputs, knowing the answer), the layers ``separate`` would write from it
    (key ``name + WRITTEN``; for two layers), and the identity baseline (key ``"identity"``).

    Shape: layers ``[B, K, C, T, H, W]`` in ``[0, 1]``; a predictor maps the mixture
    ``[B, C, T, H, W]`` to ``[B, N, C, T, H, W]``.
    """
    mixture = blend(layers)  # [B, C, T, H, W]
    scores = {}
    for name, predict in predictors.items():
        pred = predict(mixture).float()
        scores[name] = score(pred, layers)
        if layers.shape[1] == 2:
            scores[name + WRITTEN] = score(written_layers(pred, mixture), layers)
    scores["identity"] = score(identity_baseline(mixture, layers.shape[1]), layers)
    return scores


class ScoreTotals:
    """Sums of :func:`score_blends` results over batches of blends, per predictor."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, scores: dict[str, Scores]) -> None:
        for name, per_blend in scores.items():
            row = torch.stack([v.sum() for v in per_blend]).double().cpu()  # [4]
            self.sums[name] = self.sums[name] + row if name in self.sums else row
        self.count += len(next(iter(scores.values())).loss)

    def means(self) -> dict[str, Scores]:
        """The mean scores (floats) of each predictor."""
        return {name: Scores(*(row / self.count).tolist()) for name, row in self.sums.items()}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: str | os.PathLike,
    *,
    model_name: str = "model",
    pairs: int = 64,
    seed: int = 0,
    clip_len: int = 32,
    size: int = 112,
    variant: str = "normal",
    same_class: bool = False,
    batch_size: int = 4,
    untrained: torch.nn.Module | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Evaluate ``model`` on ``pairs`` fixed blends from ``data``.

    Args:
        model: a :class:`~centrifuge.models.CentrifugeNet` (evaluated in eval mode).
        data: folder of videos (needs at least two).
        variant: ``normal``, ``frozen``, ``one-frozen`` or ``colour:NAME``.
        same_class: pair videos of the same label only (labelled folders).
        untrained: optionally, a freshly initialised model reported beside the trained one.
    """
    started = time.monotonic()
    device = torch.device(device)
    entries = scan_folder(data)
    specs = validation_pairs(entries, pairs, seed, clip_len, same_class=same_class)
    models = {"model": model.to(device).eval()}
    if untrained is not None:
        models["untrained"] = untrained.to(device).eval()
    totals, per_pair = ScoreTotals(), []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        scores = score_blends(models, torch.stack(batch).to(device))  # layers [B, 2, C, T, S, S]
        totals.add(scores)
        per_pair.extend(scores["model"].loss.tolist())
        batch.clear()
        if progress is not None:
            progress(totals.count, len(specs))

    for a, b in iter_pairs(entries, specs, clip_len, size):
        batch.append(make_layers(a, b, variant))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    mean = totals.means()
    keys = {"model": "model", "identity": "identity", "written": "model" + WRITTEN}
    report = Report(
        model=model_name,
        pairs=len(specs),
        seed=seed,
        clip=[clip_len, size, size],
        variant=variant,
        loss={k: mean[v].loss for k, v in keys.items()},
        psnr_db={k: mean[v].psnr_db for k, v in keys.items()},
        ssim={k: mean[v].ssim for k, v in keys.items()},
        diversity=mean["model"].diversity,
        n_outputs=model.n_outputs,
        seconds=round(time.monotonic() - started, 2),
        per_pair_loss=per_pair,
    )
    if untrained is not None:
        u = mean["untrained"]
        report.untrained = {"loss": u.loss, "psnr_db": u.psnr_db, "ssim": u.ssim}
    return report
