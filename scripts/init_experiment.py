"""Does the Kinetics-400 I3D help? Three runs of the same recipe, seeds and compute budget.

* ``scratch``: `small` from random initialisation (the shipped model's start).
* ``kinetics``: `small` whose encoder (width 0.25) starts from the Kinetics I3D by weight selection,
  BatchNorm statistics re-estimated on training blends.
* ``kinetics-wide``: the same with a wider encoder (width 0.5).

Each run trains with `centrifuge train`'s code path (`centrifuge.train.Trainer`) and validates
on fixed blends of ``--val`` every ``--val-every`` steps; the script writes a table (Markdown), the
curves (PNG: validation loss / identity against steps and against time) and the raw numbers (JSON)
into ``--report``. Runs live in ``--out``; a finished run is not trained again.

The budget is compute, not the wall clock: ``--steps`` for the two `small`-width runs (the same
network, so the same work per step) and, for the wider run, the steps of the same number of
forward FLOPs (counted on the meta device). On a machine shared with other work the wall clock of
equal runs differs by the load of the moment; the JSON keeps the wall and the CPU seconds of every
point so that both can be compared.

    python scripts/init_experiment.py --data ../shared/data/train --photos ../shared/data/photos \\
        --val ../shared/data/val --out runs/init --steps 500 --report docs/results/kinetics-init

Needs the converted weights first: ``centrifuge weights kinetics-i3d``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from centrifuge.config import load_config
from centrifuge.data.bank import build_bank
from centrifuge.data.folder import ClipSpec
from centrifuge.data.index import scan_folder
from centrifuge.models.registry import count_flops
from centrifuge.train import Trainer

ARMS = {
    "scratch": [],
    "kinetics": ["train.init=kinetics-i3d"],
    "kinetics-wide": ["train.init=kinetics-i3d", "model.width=0.5"],
}


def _steps(arm: str, args: argparse.Namespace) -> int:
    """The arm's step budget: ``--steps`` of `small`'s forward FLOPs."""
    clip = (args.clip_len, args.crop, args.crop)
    width = [s.split("=")[1] for s in ARMS[arm] if s.startswith("model.width=")]
    if not width:
        return args.steps
    ratio = count_flops("small", clip, width=float(width[0])) / count_flops("small", clip)
    return round(args.steps / ratio)


def _settings(args: argparse.Namespace) -> list[str]:
    return [
        f"data.clip_len={args.clip_len}",
        f"data.crop={args.crop}",
        f"data.photos={args.photos}" if args.photos else "data.photo_fraction=0",
        "data.workers=0",
        f"train.batch_size={args.batch}",
        f"train.lr={args.lr}",
        "train.warmup_steps=50",
        "train.precision=fp32",
        "train.channels_last=false",
        "train.log_every=10",
        f"train.val_every={args.val_every}",
        f"train.val_pairs={args.val_pairs}",
        "train.sample_every=100000",
        "train.ckpt_every=100000",
        "train.ckpt_minutes=5",
        f"train.threads={args.threads}",
        f"train.seed={args.seed}",
    ]


def _run(arm: str, args: argparse.Namespace) -> dict:
    """Train one arm; returns its validation curve with the wall time of every point."""
    out = args.out / arm
    done = out / "curve.json"
    if done.is_file():
        return json.loads(done.read_text())
    shutil.rmtree(out, ignore_errors=True)  # an unfinished run starts again, from nothing
    steps = f"train.steps={_steps(arm, args)}"
    config = load_config("small", [*_settings(args), steps, *ARMS[arm]])
    times: dict[int, tuple[float, float]] = {}
    wall, cpu = time.monotonic(), time.process_time()

    def record(info: dict) -> None:
        times[info["step"]] = (time.monotonic() - wall, time.process_time() - cpu)

    trainer = Trainer(config, data=args.data, val=args.val, out=out, device="cpu", callback=record)
    val0 = trainer.evaluate()
    # the clocks include BatchNorm re-estimation, not the set-up or the step-0 validation
    wall, cpu = time.monotonic(), time.process_time()
    summary = trainer.fit()
    points = [{"step": 0, "seconds": 0.0, "cpu_seconds": 0.0, **val0}]
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "val_loss" in rec:
            seconds, cpu_seconds = times.get(rec["step"], (float("nan"), float("nan")))
            points.append({"seconds": seconds, "cpu_seconds": cpu_seconds, **rec})
    curve = {
        "arm": arm,
        "settings": ARMS[arm],
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "steps": summary["step"],
        "seconds": time.monotonic() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "gflops_per_clip": count_flops(
            "small", (args.clip_len, args.crop, args.crop), **trainer.config.model.overrides()
        )
        / 1e9,
        "points": points,
    }
    done.write_text(json.dumps(curve, indent=1))
    return curve


def _table(curves: list[dict]) -> str:
    rows = [
        "| run | encoder init | params | GFLOPs/clip | steps | wall s/step | CPU s/step | val loss "
        "| identity | ratio | best ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in curves:
        last = c["points"][-1]
        best = min(p["val_loss"] / p["val_identity"] for p in c["points"])
        init = "Kinetics I3D" if c["settings"] else "random"
        rows.append(
            f"| {c['arm']} | {init} | {c['params'] / 1e6:.2f}M | {c['gflops_per_clip']:.2f} | "
            f"{c['steps']} | {c['seconds'] / max(c['steps'], 1):.2f} | "
            f"{c['cpu_seconds'] / max(c['steps'], 1):.2f} | {last['val_loss']:.4f} | "
            f"{last['val_identity']:.4f} | {last['val_loss'] / last['val_identity']:.3f} | "
            f"{best:.3f} |"
        )
    return "\n".join(rows)


def _plot(curves: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for c in curves:
        ratio = [p["val_loss"] / p["val_identity"] for p in c["points"]]
        axes[0].plot([p["step"] for p in c["points"]], ratio, marker=".", label=c["arm"])
        axes[1].plot([p["cpu_seconds"] / 60 for p in c["points"]], ratio, marker=".")
        axes[2].plot([p["seconds"] / 60 for p in c["points"]], ratio, marker=".")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("CPU time of the run (minutes, all threads)")
    axes[2].set_xlabel("wall time (minutes; machine shared with other work)")
    axes[0].set_ylabel("validation loss / identity loss (lower is better)")
    ratios = [p["val_loss"] / p["val_identity"] for c in curves for p in c["points"]]
    top = 1.05  # early points far above identity (BatchNorm statistics lag the weights) cut off
    for ax in axes:
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.grid(alpha=0.3)
        ax.set_ylim(min(ratios) - 0.01, top)
    if max(ratios) > top:
        axes[0].set_title(f"points above {top} cut off (highest {max(ratios):.2f}); see the JSON")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="training videos (any tree)")
    parser.add_argument("--photos", type=Path, help="photographs animated into extra clips")
    parser.add_argument("--val", type=Path, required=True, help="validation videos")
    parser.add_argument("--out", type=Path, required=True, help="folder of the three runs")
    parser.add_argument("--report", type=Path, required=True, help="prefix of .md/.json/.png")
    parser.add_argument("--steps", type=int, default=500, help="steps of the small-width runs")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--clip-len", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--val-every", type=int, default=50)
    parser.add_argument("--val-pairs", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    parser.add_argument(
        "--bank-only",
        action="store_true",
        help="build the clip bank and stop (before runs in "
        "parallel processes, one --arms each; a last call with all arms writes the report)",
    )
    args = parser.parse_args()

    spec = ClipSpec(clip_len=args.clip_len, crop=args.crop)
    build_bank(scan_folder(args.data), spec.short_side)  # once, outside every run's clock
    if args.bank_only:
        return
    curves = [_run(arm, args) for arm in args.arms]
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    args.report.parent.mkdir(parents=True, exist_ok=True)
    table = _table(curves)
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "torch": torch.__version__,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "curves": curves,
    }
    args.report.with_suffix(".json").write_text(json.dumps(record, indent=1))
    args.report.with_suffix(".md").write_text(table + "\n")
    _plot(curves, args.report.with_suffix(".png"))
    print(table)


if __name__ == "__main__":
    main()
