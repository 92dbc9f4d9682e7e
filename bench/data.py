"""Data pipeline speed: clips/s of 32x112x112 training clips from direct decoding (N workers) and
from the clip bank (N workers), on this machine.

    python bench/data.py --data ../shared/data/train --workers 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data import ClipBank, ClipSpec, RandomClips, StreamSampler, VideoFolder
from centrifuge.data.index import scan_folder
from common import machine, print_table, write_json


def rate(ds, workers: int, clips: int) -> float:
    if workers == 0:
        torch.set_num_threads(1)  # what a DataLoader worker uses
        ds[0]
        start = time.perf_counter()
        for i in range(clips):
            ds[i + 1]
        return clips / (time.perf_counter() - start)
    loader = DataLoader(
        ds, batch_size=8, sampler=StreamSampler(0), num_workers=workers, prefetch_factor=4
    )
    it = iter(loader)
    for _ in range(2 * workers):
        next(it)
    start = time.perf_counter()
    for _ in range(clips // 8):
        next(it)
    return clips / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--clip-len", type=int, default=32)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--decode-clips", type=int, default=48)
    p.add_argument("--bank-clips", type=int, default=2000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    spec = ClipSpec(clip_len=args.clip_len, crop=args.crop)
    entries = scan_folder(args.data)
    start = time.perf_counter()
    bank = ClipBank.from_entries(entries, spec.short_side)
    bank_seconds = time.perf_counter() - start
    folder = VideoFolder(None, short_side=spec.short_side, entries=entries)
    rows = []
    for w in args.workers:
        rows.append(
            {
                "source": "decode",
                "workers": w,
                "clips_per_s": rate(RandomClips(folder, spec), w, args.decode_clips),
            }
        )
        rows.append(
            {
                "source": "clip bank",
                "workers": w,
                "clips_per_s": rate(RandomClips(bank, spec), w, args.bank_clips),
            }
        )
    print_table(rows, ["source", "workers", "clips_per_s"])
    print(f"clip bank: {bank.nbytes / 1e9:.2f} GB, opened/built in {bank_seconds:.1f} s")
    write_json(
        "data",
        {
            "machine": machine(),
            "clip": [args.clip_len, args.crop, args.crop],
            "videos": len(entries),
            "bank_gb": bank.nbytes / 1e9,
            "rows": rows,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
