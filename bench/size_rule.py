"""At which size should `separate --size auto` run the model? (issue 22, item 3)

Validation blends (as `centrifuge evaluate` makes them) at several content sizes (the short side
of the frames a user gives), each separated the way `separate` does it (`Separator.window`:
resized to the processing size, the predicted differences added back to the frames at the
content size, then the written layers: the farthest split's means) at several processing sizes.
The table gives the written loss against the two true videos at the content size, its ratio to
the identity baseline, and the model's seconds per window on this machine.

The validation clips are at most 256 px on their short side: a larger content size is an
upscale of them (smoother than a real video of that size), marked as such in the table.

    python bench/size_rule.py ../shared/data/val --pairs 32 --content 112 192 256
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data.blend import blend
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.inference import Separator
from centrifuge.inference.report import written_layers
from centrifuge.losses import pairwise_l1_grad
from centrifuge.losses.pit import best_assignment
from centrifuge.metrics import identity_baseline
from centrifuge.pretrained import load_model
from common import machine, print_table, write_json

NATIVE_SHORT_SIDE = 256  # the largest short side among ../shared/data/val


def _loss(layers: torch.Tensor, truth: torch.Tensor) -> float:
    """Paper loss of two layers ``[2, C, T, H, W]`` against the truth, in the better order."""
    return float(best_assignment(pairwise_l1_grad(layers[None], truth[None]))[0][0])


def processing_sides(content: int, candidates: list[int]) -> list[tuple[str, int | None]]:
    """``(label, size)`` of the processing sizes to try for a content short side: the fixed
    candidates below it, half of it, and native (``None``)."""
    sides = [(str(c), c) for c in candidates if c < content]
    if content // 2 not in candidates and content // 2 >= 32:
        sides.append((f"half ({content // 2})", content // 2))
    return [*sides, ("native", None)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("data", help="folder of validation videos")
    p.add_argument("--model", default="small")
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--content", type=int, nargs="+", default=[112, 192, 256])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 112, 128, 160])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    model = load_model(args.model)
    entries = scan_folder(args.data)
    specs = validation_pairs(entries, args.pairs, args.seed, args.clip_len)
    rows = []
    for content in args.content:
        sides = processing_sides(content, args.sizes)
        separators = {
            label: Separator(model, clip_len=args.clip_len, overlap=0, size=size)
            for label, size in sides
        }
        totals = {label: 0.0 for label, _ in sides}
        seconds = {label: 0.0 for label, _ in sides}
        identity = 0.0
        for a, b in iter_pairs(entries, specs, args.clip_len, content):
            truth = torch.stack([a, b])  # [2, C, T, S, S]
            mixture = blend(truth[None])[0]
            identity += _loss(identity_baseline(mixture[None], 2)[0], truth) / len(specs)
            for label, separator in separators.items():
                if not seconds[label]:
                    separator.window(mixture)  # warm-up: the engine compiles each shape once
                started = time.perf_counter()
                pred = separator.window(mixture)  # [N, C, T, S, S]
                seconds[label] += (time.perf_counter() - started) / len(specs)
                written = written_layers(pred[None], mixture[None])[0]
                totals[label] += _loss(written, truth) / len(specs)
        upscaled = " (upscaled)" if content > NATIVE_SHORT_SIDE else ""
        for label, _ in sides:
            rows.append(
                {
                    "content": f"{content}{upscaled}",
                    "processing": label,
                    "written loss": round(totals[label], 4),
                    "/identity": round(totals[label] / identity, 3),
                    "s/window": round(seconds[label], 2),
                }
            )
    clip = f"{args.clip_len} frames, square crops"
    print(f"{args.model}: {args.pairs} blends of {args.data}, seed {args.seed}, {clip}")
    print_table(rows, list(rows[0]))
    write_json(
        "size_rule",
        {
            "machine": machine(),
            "model": args.model,
            "pairs": args.pairs,
            "seed": args.seed,
            "clip_len": args.clip_len,
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
