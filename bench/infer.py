"""Inference speed of `paper` and `small`: latency and throughput per clip, FLOPs and MFU.

Variants: fp32 eager, bf16 autocast + channels_last_3d (CUDA; on CPU: channels_last_3d in fp32),
and torch.compile of the latter (CUDA graphs with --cudagraphs). Each row: median of --repeat
timed calls after warm-up (CUDA events on GPU), ms per clip, clips/s, achieved TFLOP/s and the
fraction of the measured bf16 matmul peak (GPU), and the relative error of the outputs against fp32.

    python bench/infer.py                       # CPU: small at 32x112x112 and 32x224x224
    python bench/infer.py --device cuda --models paper small --shapes 64x224x224 32x112x112
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.models import build_model
from centrifuge.models.fuse import fold_batchnorm
from centrifuge.utils import tune_cpu_allocator
from common import machine, median, print_table, timer, write_json


def trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Give zero-initialised heads (residual models) random weights, so outputs depend on the
    network and the precision comparison means something."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d) and not module.weight.abs().sum():
            torch.nn.init.normal_(module.weight, std=0.02)
    return model


def flops_per_clip(name: str, shape: tuple[int, int, int]) -> float:
    with torch.device("meta"):
        model = build_model(name).eval()
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(1, 3, *shape))
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device) -> float | None:
    """Measured bf16 matmul TFLOP/s (8192^3, random data), the MFU denominator."""
    if device.type != "cuda":
        return None
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    ms = median(timer(device)(lambda: a @ b, warmup=3, repeat=10))
    return 2 * 8192**3 / (ms / 1000) / 1e12


def run(args: argparse.Namespace, save) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    peak = matmul_peak(device)
    rows = []
    result = {"machine": machine(), "bf16_matmul_peak_tflops": peak, "rows": rows}
    for name in args.models:
        for shape_text in args.shapes:
            shape = tuple(int(v) for v in shape_text.split("x"))
            flops = flops_per_clip(name, shape)
            for batch in args.batches:
                base = trained_like(build_model(name)).to(device).eval()
                x = torch.rand(batch, 3, *shape, device=device)
                with torch.inference_mode():
                    reference = base(x).float()
                variants = [("fp32", base, x, False)]
                fast = build_model(name).to(device).eval()
                fast.load_state_dict(base.state_dict())
                fast = fast.to(memory_format=torch.channels_last_3d)
                xc = x.contiguous(memory_format=torch.channels_last_3d)
                bf16 = device.type == "cuda"
                variants.append(("bf16+cl3d" if bf16 else "fp32+cl3d", fast, xc, bf16))
                if device.type == "cpu":  # what `centrifuge separate` runs: BatchNorm folded
                    folded = fold_batchnorm(fast).to(memory_format=torch.channels_last_3d)
                    variants.append(("fp32+cl3d+foldBN", folded, xc, False))
                if args.compile and (
                    not args.compile_only or f"{name}:{shape_text}:{batch}" in args.compile_only
                ):
                    mode = "reduce-overhead" if args.cudagraphs else None
                    compiled = torch.compile(fast, mode=mode)
                    variants.append(
                        (("compile+graphs" if args.cudagraphs else "compile"), compiled, xc, bf16)
                    )
                for label, model, inp, use_bf16 in variants:

                    def call(model=model, inp=inp, use_bf16=use_bf16):
                        with (
                            torch.inference_mode(),
                            torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16),
                        ):
                            return model(inp)

                    with torch.inference_mode():
                        out = call().float()
                    rel = float((out - reference).norm() / reference.norm())
                    ms = median(timer(device)(call, warmup=args.warmup, repeat=args.repeat))
                    per_clip = ms / batch
                    tflops = flops / (per_clip / 1000) / 1e12
                    rows.append(
                        {
                            "model": name,
                            "clip": shape_text,
                            "batch": batch,
                            "variant": label,
                            "ms_per_clip": per_clip,
                            "clips_per_s": 1000 / per_clip,
                            "gflop_per_clip": flops / 1e9,
                            "tflop_s": tflops,
                            "mfu": tflops / peak if peak else None,
                            "rel_err": rel,
                        }
                    )
                    print_table(rows[-1:], list(rows[-1]))
                    save(result)  # after every row: a timeout keeps what was measured
                del base, fast
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--shapes", nargs="+", default=None, help="TxHxW, e.g. 64x224x224")
    p.add_argument("--batches", nargs="+", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--compile-only", nargs="*", default=None, help="model:TxHxW:batch to compile")
    p.add_argument("--cudagraphs", action="store_true", help="compile with CUDA graphs")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--default-allocator",
        action="store_true",
        help="CPU: keep glibc's malloc defaults (the CLI tunes them)",
    )
    p.add_argument(
        "--json", default=None, help="output JSON (default bench/results/infer-<device>.json)"
    )
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    args.models = args.models or (["paper", "small"] if cuda else ["small"])
    args.shapes = args.shapes or (
        ["64x224x224", "32x112x112"] if cuda else ["32x112x112", "32x224x224"]
    )
    args.batches = args.batches or ([1, 8] if cuda else [1])
    if args.threads:
        torch.set_num_threads(args.threads)
    if not cuda and not args.default_allocator:
        tune_cpu_allocator()  # as the command line does
    name = f"infer-{'cuda' if cuda else 'cpu'}"
    result = run(args, lambda r: write_json(name, r, args.json, quiet=True))
    print()
    print_table(
        result["rows"],
        [
            "model",
            "clip",
            "batch",
            "variant",
            "ms_per_clip",
            "clips_per_s",
            "gflop_per_clip",
            "tflop_s",
            "mfu",
            "rel_err",
        ],
    )
    write_json(name, result, args.json)


if __name__ == "__main__":
    main()
