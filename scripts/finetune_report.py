"""Chart and table of CPU fine-tunes: validation curves of training runs against wall time, and the
written / oracle scores of `centrifuge evaluate` JSONs (issue 22's fine-tune and prior A/B).

    python scripts/finetune_report.py --runs A=runs/ft-A B=runs/ft-B \\
        --evals shipped=runs/eval/shipped A=runs/eval/A B=runs/eval/B --seeds 0 1 \\
        --out docs/results/finetune-ab

Each ``--evals`` entry is a prefix: ``PREFIX-s{seed}.json`` must exist for every seed. Writes
OUT.png (chart) and OUT.json (the table's numbers); prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from centrifuge.config import load_config


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def run_curve(folder: Path) -> dict:
    """Validation written / identity and best-2 / identity against elapsed minutes of a run."""
    # clips_per_s counts mixtures: batch_size per step (one process)
    clips_per_step = load_config(folder / "config.yaml").train.batch_size
    minutes_at: dict[int, float] = {}
    val = []
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "clips_per_s" in record:
            minutes_at[record["step"]] = (
                clips_per_step * record["step"] / record["clips_per_s"] / 60
            )
        if "val_written_loss" in record:
            val.append(record)
    steps = sorted(minutes_at)
    out = {"minutes": [], "steps": [], "written": [], "oracle": []}
    for record in val:
        known = [s for s in steps if s <= record["step"]]
        if not known:
            continue
        out["steps"].append(record["step"])
        out["minutes"].append(minutes_at[known[-1]] * record["step"] / known[-1])
        out["written"].append(record["val_written_loss"] / record["val_identity"])
        out["oracle"].append(record["val_loss"] / record["val_identity"])
    summary = json.loads((folder / "summary.json").read_text())
    out["total_steps"], out["seconds"] = summary["step"], summary["seconds"]
    return out


def eval_row(prefix: str, seeds: list[int]) -> dict:
    row: dict = {}
    for seed in seeds:
        d = json.loads(Path(f"{prefix}-s{seed}.json").read_text())
        ident = d["loss"]["identity"]
        row[f"s{seed}"] = {
            "written": d["loss"]["written"],
            "oracle": d["loss"]["model"],
            "identity": ident,
            "written_ratio": d["loss"]["written"] / ident,
            "oracle_ratio": d["loss"]["model"] / ident,
            "written_psnr_db": d["psnr_db"]["written"],
            "seconds": d["seconds"],
        }
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=[], help="LABEL=RUN_FOLDER")
    p.add_argument("--evals", nargs="+", required=True, help="LABEL=JSON_PREFIX")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    curves = {k: run_curve(Path(v)) for k, v in _pairs(args.runs).items()}
    evals = {k: eval_row(v, args.seeds) for k, v in _pairs(args.evals).items()}

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for label, c in curves.items():
        (line,) = left.plot(c["minutes"], c["written"], marker="o", label=f"{label}: written")
        left.plot(
            c["minutes"], c["oracle"], ls="--", color=line.get_color(), label=f"{label}: best 2"
        )
    left.set_xlabel("wall minutes (one thread each, runs side by side)")
    left.set_ylabel("validation loss / identity (16 blends)")
    left.set_title("During training")
    left.legend(fontsize=8)
    labels = list(evals)
    width = 0.8 / (2 * len(args.seeds))
    for j, seed in enumerate(args.seeds):
        for k, what in enumerate(("written", "oracle")):
            xs = [i + (2 * j + k - len(args.seeds)) * width + width / 2 for i in range(len(labels))]
            ys = [evals[lab][f"s{seed}"][f"{what}_ratio"] for lab in labels]
            right.bar(xs, ys, width, label=f"{what}, seed {seed}", alpha=0.9 if k == 0 else 0.5)
    right.set_xticks(range(len(labels)), labels)
    lows = [
        evals[lab][f"s{s}"][f"{w}_ratio"]
        for lab in labels
        for s in args.seeds
        for w in ("written", "oracle")
    ]
    right.set_ylim(min(lows) - 0.03, max(lows) + 0.02)
    right.set_ylabel("loss / identity (64 val blends, 32x112x112)")
    right.set_title("centrifuge evaluate (lower is better)")
    right.legend(fontsize=8)
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out.with_suffix(".png"), dpi=100)
    out.with_suffix(".json").write_text(json.dumps({"runs": curves, "evals": evals}, indent=1))

    cols = [f"{w} s{s}" for s in args.seeds for w in ("written", "best 2")]
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for lab in labels:
        cells = []
        for s in args.seeds:
            e = evals[lab][f"s{s}"]
            cells += [
                f"{e['written']:.4f} ({e['written_ratio']:.3f}x)",
                f"{e['oracle']:.4f} ({e['oracle_ratio']:.3f}x)",
            ]
        print(f"| {lab} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
