"""CPU cost of one `small` training step, for variants of the model and the step (issue 22, item 4).

Each row times `centrifuge train`'s own code path (Trainer.batches + Trainer.train_step: clip bank,
mixing, forward, PIT loss, backward, optimizer) on one thread, so that CPU-s per step is wall time
and the process's CPU time agrees (both are reported). Variants:

* ``shipped``: the shipped config (``small``, fp32, contiguous);
* ``channels_last``: ``train.channels_last=true`` (model and input in channels_last_3d);
* ``head_matmul``: the full-resolution 1x1x1 head computed as ``torch.einsum`` (same values);
* ``half_res_head``: the difference predicted at half resolution (the last, full-resolution decoder
  stage dropped, a 1x1x1 head on the half-resolution features, trilinear up-sampling): a different
  model, timed only here (its quality would need training);
* ``prior_S``: the frozen full-width Kinetics I3D as a content prior (``model.prior_scale=S``;
  random I3D weights here: the cost does not depend on them).

    python bench/train_variants.py --data ../shared/data/train
    python bench/train_variants.py --data ../shared/data/train --crop 112 --set data.scale=1.143 \
        --variants shipped prior_0.5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.config import load_config
from centrifuge.train import Trainer
from common import machine, print_table, write_json

VARIANTS = ("shipped", "channels_last", "head_matmul", "half_res_head", "prior_0.5", "prior_1")


def _head_matmul(trainer: Trainer) -> None:
    """The decoder's 1x1x1 head as an einsum over channels: the same function."""
    head = trainer.model.predictor.decoder.head

    def forward(x: torch.Tensor) -> torch.Tensor:
        w = head.weight.flatten(1)  # [C_out, C_in]
        return torch.einsum("oc,bcthw->bothw", w, x) + head.bias.view(1, -1, 1, 1, 1)

    head.forward = forward


def _half_res_head(trainer: Trainer) -> None:
    """Drop the full-resolution stage: a 1x1x1 head on the half-resolution features, then
    trilinear up-sampling to the input's size."""
    decoder = trainer.model.predictor.decoder
    last = decoder.stages[-1]
    head = nn.Conv3d(last.up.in_channels, decoder.head.out_channels, kernel_size=1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    trainer.optimizer.add_param_group({"params": list(head.parameters())})

    def forward(deepest: torch.Tensor, skips) -> torch.Tensor:
        x = deepest
        for stage, skip in zip(decoder.stages[:-1], skips[:-1]):
            x = stage(x, skip)
        size = skips[-1].shape[-3:]
        return F.interpolate(head(x), size=tuple(size), mode="trilinear", align_corners=False)

    decoder.forward = forward


def _trainer(args, variant: str, out: str) -> Trainer:
    sets = [
        f"train.batch_size={args.batch}",
        f"data.clip_len={args.clip_len}",
        f"data.crop={args.crop}",
        "data.photo_fraction=0",
        "train.threads=1",
        *args.set,
    ]
    if variant == "channels_last":
        sets.append("train.channels_last=true")
    if variant.startswith("prior_"):
        sets.append(f"model.prior_scale={variant.removeprefix('prior_')}")
    trainer = Trainer(load_config(args.config, sets), data=args.data, out=out, device="cpu")
    if variant == "head_matmul":
        _head_matmul(trainer)
    if variant == "half_res_head":
        _half_res_head(trainer)
    return trainer


def time_variant(args, variant: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        trainer = _trainer(args, variant, out)
        batches, walls, cpus = trainer.batches(), [], []
        for i in range(args.warmup + args.repeat):
            batch = next(batches)
            wall, cpu = time.perf_counter(), time.process_time()
            trainer.train_step(batch, i)
            if i >= args.warmup:
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"variant": variant, "s_per_step": wall, "cpu_s_per_step": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--config", default="finetune-cpu")
    p.add_argument("--set", action="append", default=[], help="config override")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    unknown = set(args.variants) - set(VARIANTS) - {v for v in args.variants if "prior_" in v}
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(1)
    rows = [time_variant(args, v) for v in args.variants]
    base = next((r for r in rows if r["variant"] == "shipped"), rows[0])
    for r in rows:
        r["vs_shipped"] = r["cpu_s_per_step"] / base["cpu_s_per_step"]
        r["clip"] = f"{args.clip_len}x{args.crop}x{args.crop} b{args.batch}"
    print()
    print_table(rows, ["variant", "clip", "s_per_step", "cpu_s_per_step", "vs_shipped"])
    payload = {"machine": machine(), "threads": 1, "rows": rows}
    write_json(f"train-variants-{args.crop}", payload, args.json)


if __name__ == "__main__":
    main()
