"""Running `small` at a reduced size: resize the layers back, or only the predicted difference?

`small` predicts each layer as the mixture plus a learned difference. On the validation blends
(``centrifuge evaluate``'s fixed pairs: alpha 0.5, T-frame clips, short side PX, centre PX x PX
crop) at full size PX, each mixture is separated

* ``native``: at PX;
* ``layer``: at a reduced side s (antialiased bilinear), the layers resized back to PX (what
  ``--size`` does today);
* ``difference``: at s, and only the difference (layer - mixture, both at s) resized back to PX
  and added to the full-size mixture;

and scored against the full-size layers with the evaluate metric (the paper's loss under the best
assignment, PSNR and SSIM of the matched layers), beside the identity baseline. The model time per
clip at each size is the median over the clips (the engine's automatic backend), and the time to
bring the N outputs of a clip back to PX is measured too.

    python bench/residual.py --data ../shared/data/val --pairs 32 --size 224 --scales 0.75 0.5
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.inference.engine import compile_model
from centrifuge.losses import best_assignment, pairwise_l1_grad, reorder_layers
from centrifuge.metrics import psnr, ssim
from centrifuge.pretrained import load_model
from centrifuge.utils import tune_cpu_allocator
from centrifuge.video.transforms import pad_to_multiple, resize, unpad
from common import machine, median, print_table, write_json

PSNR_CAP_DB = 100.0  # as evaluate() counts identical layers


def scores(pred: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """``[loss, PSNR, SSIM]`` of ``pred [1, N, C, T, H, W]`` against ``layers [1, K, ...]``, as
    ``centrifuge.evaluate`` computes them (mean over the K matched layers)."""
    cost, match = best_assignment(pairwise_l1_grad(pred, layers))
    matched = reorder_layers(pred, match)
    p = psnr(matched, layers).clamp(max=PSNR_CAP_DB).mean(1)
    s = ssim(matched, layers).mean(1)
    return torch.stack([cost[0], p[0], s[0]]).double()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--size", type=int, default=224, help="full size PX (square crops)")
    p.add_argument("--scales", type=float, nargs="+", default=[0.75, 0.5])
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="default bench/results/residual.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()
    info = machine() | {"loadavg_start": os.getloadavg()}
    model = load_model("small")
    runner = compile_model(model, backend=args.backend)
    sides = {"native": args.size} | {f"{s:g}x": round(args.size * s) for s in args.scales}
    entries = scan_folder(args.data)
    specs = validation_pairs(entries, args.pairs, args.seed, args.clip_len)
    sums: dict[str, torch.Tensor] = {}
    model_ms: dict[str, list[float]] = {name: [] for name in sides}
    upsample_ms: list[float] = []

    def add(name: str, value: torch.Tensor) -> None:
        sums[name] = sums.get(name, torch.zeros(3, dtype=torch.float64)) + value

    for i, (a, b) in enumerate(iter_pairs(entries, specs, args.clip_len, args.size)):
        layers = torch.stack([a, b])[None]  # [1, K, C, T, S, S]
        mixture = layers.mean(dim=1)  # [1, C, T, S, S]
        add("identity", scores(mixture[:, None].expand(-1, 2, -1, -1, -1, -1), layers))
        for name, side in sides.items():
            small = resize(mixture, side, side)
            padded, orig = pad_to_multiple(small, (8, 32, 32))
            runner.prepare(tuple(padded.shape))  # export/compile outside the timing
            started = time.perf_counter()
            pred = runner(padded)
            model_ms[name].append((time.perf_counter() - started) * 1000)
            pred = unpad(pred, orig)  # [1, N, C, T, s, s]
            if name == "native":
                add("native", scores(pred, layers))
                continue
            started = time.perf_counter()
            back = resize(pred, args.size, args.size)
            upsample_ms.append((time.perf_counter() - started) * 1000)
            add(f"{name} layer", scores(back, layers))
            difference = resize(pred - small[:, None], args.size, args.size)
            add(f"{name} difference", scores(mixture[:, None] + difference, layers))
        print(f"{i + 1}/{len(specs)}", flush=True)

    n = len(specs)
    identity = float(sums["identity"][0] / n)
    rows = []
    for name, total in sums.items():
        loss, p_db, s = (total / n).tolist()
        size = name.split()[0]
        rows.append(
            {
                "method": name,
                "side": sides.get(size, args.size),
                "loss": loss,
                "loss_vs_identity": loss / identity,
                "psnr_db": p_db,
                "ssim": s,
                "model_ms": median(model_ms[size]) if size in model_ms else None,
            }
        )
    native_ms = rows[1]["model_ms"]
    for row in rows:
        row["cost_vs_native"] = row["model_ms"] / native_ms if row["model_ms"] else None
    info["loadavg_end"] = os.getloadavg()
    result = {
        "machine": info,
        "backend": runner.backend,
        "pairs": n,
        "seed": args.seed,
        "clip": [args.clip_len, args.size, args.size],
        "upsample_n_layers_ms": median(upsample_ms) if upsample_ms else None,
        "rows": rows,
    }
    print()
    print_table(rows, list(rows[0]))
    print(f"backend {runner.backend}; resizing N layers back: {result['upsample_n_layers_ms']} ms")
    print(f"load average: start {info['loadavg_start']}, end {info['loadavg_end']}")
    write_json("residual", result, args.json)


if __name__ == "__main__":
    main()
