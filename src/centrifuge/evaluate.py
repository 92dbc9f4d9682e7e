"""Evaluation on fixed, seeded blends: the paper's loss, PSNR/SSIM of the matched layers, diversity.

``evaluate`` builds P blends (alpha = 0.5) of pairs of distinct videos from a folder exactly as
:mod:`centrifuge.data.validation` defines them (same folder, seed, T and PX -> same blends), runs
the model, and reports the model beside the identity baseline (every output = the mixture) and,
when asked, an untrained model of the same architecture. PSNR and SSIM are averaged over the K
layers matched by the loss-minimising assignment.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, make_layers, validation_pairs
from centrifuge.losses import best_assignment, diversity, pairwise_l1_grad, reorder_layers
from centrifuge.metrics import psnr, ssim
from centrifuge.utils import atomic_path

__all__ = ["Report", "evaluate"]

PSNR_CAP_DB = 100.0  # identical layers (a perfect pure-colour output) count as 100 dB


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
        rows = [("model", self.loss["model"], self.psnr_db["model"], self.ssim["model"])]
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
        ratio = self.loss["model"] / self.loss["identity"] if self.loss["identity"] else math.nan
        lines.append(
            f"loss / identity = {ratio:.3f}; diversity min_i!=j l(Oi, Oj) = {self.diversity:.4f}"
        )
        if self.downstream:
            d = self.downstream
            lines.append(
                f"downstream accuracy (1 / 0.5 / 0 per pair): mixed {d['mixed']:.3f}, "
                f"separated {d['separated']:.3f}, clean {d['clean']:.3f}"
            )
        return "\n".join(lines)

    def to_markdown(self) -> str:
        head = "| | loss | PSNR (dB) | SSIM |\n|---|---|---|---|\n"
        rows = [
            f"| {self.model} | {self.loss['model']:.4f} | {self.psnr_db['model']:.2f} | "
            f"{self.ssim['model']:.3f} |",
            f"| identity | {self.loss['identity']:.4f} | {self.psnr_db['identity']:.2f} | "
            f"{self.ssim['identity']:.3f} |",
        ]
        return head + "\n".join(rows) + "\n"


def _scores(
    pred: torch.Tensor, layers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample loss, PSNR and SSIM (means over the K matched layers): three ``[B]``."""
    cost, match = best_assignment(pairwise_l1_grad(pred, layers))
    matched = reorder_layers(pred, match)  # [B, K, C, T, H, W]
    p = psnr(matched, layers).clamp(max=PSNR_CAP_DB).mean(1)
    s = ssim(matched, layers).mean(1)
    return cost, p, s


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
    sums = {k: torch.zeros(3, dtype=torch.float64) for k in [*models, "identity"]}
    div_sum, per_pair, done = 0.0, [], 0
    batch: list[torch.Tensor] = []

    def flush() -> None:
        nonlocal div_sum, done
        layers = torch.stack(batch).to(device)  # [B, 2, C, T, S, S]
        mixture = layers.mean(dim=1)
        for name, net in models.items():
            pred = net(mixture).float()
            cost, p, s = _scores(pred, layers)
            sums[name] += torch.stack([cost.sum(), p.sum(), s.sum()]).double().cpu()
            if name == "model":
                div_sum += float(diversity(pred).sum())
                per_pair.extend(cost.tolist())
        same = mixture[:, None].expand(-1, 2, -1, -1, -1, -1)
        cost, p, s = _scores(same, layers)
        sums["identity"] += torch.stack([cost.sum(), p.sum(), s.sum()]).double().cpu()
        done += len(batch)
        batch.clear()
        if progress is not None:
            progress(done, len(specs))

    for a, b in iter_pairs(entries, specs, clip_len, size):
        batch.append(make_layers(a, b, variant))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    n = len(specs)
    mean = {k: (v / n).tolist() for k, v in sums.items()}
    report = Report(
        model=model_name,
        pairs=n,
        seed=seed,
        clip=[clip_len, size, size],
        variant=variant,
        loss={"model": mean["model"][0], "identity": mean["identity"][0]},
        psnr_db={"model": mean["model"][1], "identity": mean["identity"][1]},
        ssim={"model": mean["model"][2], "identity": mean["identity"][2]},
        diversity=div_sum / n,
        n_outputs=model.n_outputs,
        seconds=round(time.monotonic() - started, 2),
        per_pair_loss=per_pair,
    )
    if untrained is not None:
        u = mean["untrained"]
        report.untrained = {"loss": u[0], "psnr_db": u[1], "ssim": u[2]}
    return report
