"""Training speed: step time and clips/s of `paper` and `small`, and whether the input keeps up.

Step rows time `centrifuge train`'s own code path, Trainer.batches + Trainer.train_step (clip bank,
mixing, forward, PIT loss, backward, optimizer step; median of --repeat steps after warm-up), with
the shipped config and any --set (e.g. train.compile=true, a bigger train.batch_size).
Input rows time the data pipeline alone on --data: the clip bank
cut on the device (GPU) or served by DataLoader workers, and direct decoding with N workers.
"Keeps up" compares the pipeline's clips/s with the clips a step consumes (2 per mixture).

    python bench/train.py --data ../shared/data/train                     # CPU
    python bench/train.py --device cuda --data DATA --models paper small --batch 10 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.config import load_config
from centrifuge.data import ClipBank, ClipSpec, RandomClips, StreamSampler, VideoFolder
from centrifuge.data.batches import gather_batch
from centrifuge.data.index import scan_folder
from centrifuge.train import Trainer
from common import machine, median, print_table, timer, write_json


def step_rows(args, device: torch.device) -> list[dict]:
    """Step time of `centrifuge train`'s own code path: :meth:`Trainer.batches` (clip bank, on the
    GPU when there is one) and :meth:`Trainer.train_step` (mixing, forward under the configured
    precision, PIT loss, backward, optimizer), with the model's shipped config and ``--set``."""
    rows = []
    for name, batch in zip(args.models, args.batch):
        sets = [
            f"model.name={name}",
            f"train.batch_size={batch}",
            f"data.clip_len={args.clip_len}",
            f"data.crop={args.crop}",
            "data.photo_fraction=0",
            *([f"train.threads={args.threads}"] if device.type == "cpu" else []),
            *args.set,
        ]
        config = load_config(args.config, sets)
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(config, data=args.data, out=out, device=device.type)
            ms = median(_time_steps(trainer, device, args))
            rows.append(
                {
                    "what": f"train_step {name}",
                    "batch": batch,
                    "ms": ms,
                    "clips_per_s": batch * 1000 / ms,
                    "needs_clips_per_s": config.data.n_layers * batch * 1000 / ms,
                    "settings": " ".join(args.set) or "shipped config",
                }
            )
    return rows


def _time_steps(trainer: Trainer, device: torch.device, args) -> list[float]:
    batches, counter = trainer.batches(), iter(range(1 << 30))

    def step() -> None:
        trainer.train_step(next(batches), next(counter))

    return timer(device)(step, warmup=args.warmup, repeat=args.repeat)


def input_rows(args, device: torch.device, needed: float) -> list[dict]:
    spec = ClipSpec(clip_len=args.clip_len, crop=args.crop)
    entries = scan_folder(args.data)
    n = args.input_clips
    rows = []
    bank = ClipBank.from_entries(entries, spec.short_side)
    sources = []
    if device.type == "cuda":
        sources.append(
            ("bank on GPU", ClipBank.from_entries(entries, spec.short_side).to(device), 0)
        )
    for w in args.workers:
        sources.append((f"bank, {w} workers", bank, w))
        sources.append(
            (
                f"decode, {w} workers",
                VideoFolder(None, short_side=spec.short_side, entries=entries),
                w,
            )
        )
    for label, source, workers in sources:
        ds = RandomClips(source, spec, seed=1)
        if workers == 0:
            gather_batch(ds, range(64))  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(0, n, 64):
                gather_batch(ds, range(1000 + i, 1000 + i + 64))
            if device.type == "cuda":
                torch.cuda.synchronize()
        else:
            loader = DataLoader(
                ds,
                batch_size=16,
                sampler=StreamSampler(0, n + 16 * workers * 2),
                num_workers=workers,
                persistent_workers=False,
                prefetch_factor=4,
            )
            it = iter(loader)
            for _ in range(workers * 2):  # let every worker start
                next(it)
            start = time.perf_counter()
            for _ in range(n // 16):
                next(it)
        rate = n / (time.perf_counter() - start)
        rows.append(
            {
                "what": f"input: {label}",
                "clips_per_s": rate,
                "keeps_up": bool(rate >= needed) if needed else None,
            }
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", required=True)
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--batch", nargs="+", type=int, default=None)
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--workers", nargs="+", type=int, default=[2])
    p.add_argument("--input-clips", type=int, default=256)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--config", default="small", help="config the runs start from")
    p.add_argument(
        "--set", action="append", default=[], help="config override (e.g. train.compile=true)"
    )
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    args.models = args.models or (["paper", "small"] if cuda else ["small"])
    args.batch = args.batch or ([10, 32] if cuda else [2])
    device = torch.device(args.device)
    rows = step_rows(args, device)
    needed = max(r["needs_clips_per_s"] for r in rows)
    rows += input_rows(args, device, needed)
    print()
    print_table(
        rows, ["what", "batch", "ms", "clips_per_s", "needs_clips_per_s", "keeps_up", "settings"]
    )
    write_json(
        f"train-{'cuda' if cuda else 'cpu'}", {"machine": machine(), "rows": rows}, args.json
    )


if __name__ == "__main__":
    main()
