"""Which layers should `separate` write? Rules for choosing 2 layers from N outputs (issue 22).

The model gives N = 4 outputs for a blend of two videos; `separate` must write two layers without
knowing the answer. This benchmark runs the model once on fixed validation blends (as `centrifuge
evaluate` makes them) and scores, by the paper's loss against the two true videos, the layers
each rule writes, beside rules that know the answer (oracles, the ceiling) and the identity
baseline (the blend as both layers). Rules without the answer:

- most dissimilar pair: the two single outputs farthest apart (what `separate` wrote before)
- farthest split means: of the balanced 2 + 2 splits, the one whose half-means are farthest apart;
  the half-means are written (what `separate` writes now, `report.LayerStats` on 96-px frames,
  every 4th frame)
- tightest split means: the split whose halves are the tightest clusters (least spread within)
- nearest to the pair: each output joins the output of the most dissimilar pair it is closer to

    python bench/choice_rules.py ../shared/data/val --pairs 64 --seeds 0 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data.blend import blend
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.inference import Separator
from centrifuge.inference.report import written_layers
from centrifuge.losses import pairwise_l1_grad, video_loss
from centrifuge.losses.grouping import balanced_bipartitions, compose
from centrifuge.losses.pit import best_assignment, most_dissimilar
from centrifuge.metrics import identity_baseline
from centrifuge.pretrained import load_model
from common import machine, print_table, write_json


def _loss(layers: torch.Tensor, truth: torch.Tensor) -> float:
    """Paper loss of two layers ``[2, C, T, H, W]`` against the truth, in the better order."""
    return float(best_assignment(pairwise_l1_grad(layers[None], truth[None]))[0][0])


def rule_scores(pred: torch.Tensor, mixture: torch.Tensor, truth: torch.Tensor) -> dict:
    """Loss of each rule's two layers. pred ``[N, C, T, H, W]``, mixture ``[C, T, H, W]``,
    truth ``[2, C, T, H, W]``, all in about ``[0, 1]``."""
    n = pred.shape[0]
    splits = balanced_bipartitions(n)
    means = [compose(pred, list(s)).clamp(0, 1) for s in splits]  # S x [2, C, T, H, W]
    spread = [
        sum(float(video_loss(pred[list(h)], m[k][None]).sum()) for k, h in enumerate(s))
        for s, m in zip(splits, means)
    ]
    pair = most_dissimilar(pred[None])[0].tolist()
    near = [[pair[0]], [pair[1]]]
    for i in sorted(set(range(n)) - set(pair)):
        d = [float(video_loss(pred[i], pred[j])) for j in pair]
        near[int(d[1] < d[0])].append(i)
    split_losses = [_loss(m, truth) for m in means]
    return {
        "most dissimilar pair": _loss(pred[pair].clamp(0, 1), truth),
        "farthest split means": _loss(written_layers(pred[None], mixture[None])[0], truth),
        "tightest split means": split_losses[min(range(len(splits)), key=spread.__getitem__)],
        "nearest to the pair": _loss(compose(pred, [tuple(g) for g in near]).clamp(0, 1), truth),
        "oracle: best 2 outputs": float(
            best_assignment(pairwise_l1_grad(pred[None].clamp(0, 1), truth[None]))[0][0]
        ),
        "oracle: best split means": min(split_losses),
        "identity": _loss(identity_baseline(mixture[None], 2)[0], truth),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="folder of validation videos")
    p.add_argument("--model", default="small")
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--backend", default="auto", help="as separate's --backend")
    p.add_argument("--precision", default="auto", help="auto, f32 or bf16 (the engine's)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    model = load_model(args.model)
    separator = Separator(
        model, clip_len=args.clip_len, overlap=0, backend=args.backend, precision=args.precision
    )
    entries = scan_folder(args.data)
    per_seed = {}
    for seed in args.seeds:
        specs = validation_pairs(entries, args.pairs, seed, args.clip_len)
        totals: dict[str, float] = {}
        for a, b in iter_pairs(entries, specs, args.clip_len, args.size):
            truth = torch.stack([a, b])  # [2, C, T, S, S]
            mixture = blend(truth[None])[0]
            pred = separator.window(mixture)  # [N, C, T, S, S], as separate runs it
            for rule, value in rule_scores(pred, mixture, truth).items():
                totals[rule] = totals.get(rule, 0.0) + value / len(specs)
        per_seed[seed] = totals
    rules = list(per_seed[args.seeds[0]])
    rows = []
    for rule in rules:
        row = {"rule": rule}
        for seed in args.seeds:
            t = per_seed[seed]
            row[f"loss s{seed}"] = round(t[rule], 4)
            row[f"/identity s{seed}"] = round(t[rule] / t["identity"], 3)
        rows.append(row)
    clip = f"{args.clip_len}x{args.size}x{args.size}"
    print(f"{args.model}: {args.pairs} blends of {args.data}, {clip}, seeds {args.seeds}")
    print_table(rows, list(rows[0]))
    write_json(
        "choice_rules",
        {
            "machine": machine(),
            "model": args.model,
            "backend": args.backend,
            "precision": args.precision,
            "pairs": args.pairs,
            "clip": [args.clip_len, args.size, args.size],
            "seeds": args.seeds,
            "per_seed": {str(s): t for s, t in per_seed.items()},
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
