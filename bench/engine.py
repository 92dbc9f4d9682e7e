"""CPU inference backends of `centrifuge.inference.engine` on one 224p window of the bundled `small`
model.

For each backend (eager torch, OpenVINO, torch.compile) and precision: start-up in a fresh process
with an empty cache (export/compile) and again with the cache the first process left (the second
run of a user), then the steady-state time per window, measured interleaved (one call of each
backend per round, so that the load of a shared machine falls on all of them alike; medians), and
the difference of the outputs to eager fp32, in floats and in 8-bit output levels.

    python bench/engine.py                          # 2 threads, [1, 3, 32, 224, 416], 7 rounds
    python bench/engine.py --backends torch openvino --rounds 11
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.inference.engine import compile_model
from centrifuge.inference.openvino import cpu_has_native_bf16
from centrifuge.pretrained import load_model
from centrifuge.utils import tune_cpu_allocator
from centrifuge.video.read import read_video
from centrifuge.video.transforms import pad_to_multiple
from common import machine, median, print_table, write_json

VAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "val"


def window(data: Path, t: int, height: int, width: int) -> torch.Tensor:
    """A real ``[1, 3, T, H', W']`` window: ``t`` frames of the first video in ``data`` at a short
    side of ``height``, cut to ``width``, padded to the model's multiples (8, 32, 32); random
    frames when there is no video."""
    videos = sorted(data.glob("*.mp4")) if data.is_dir() else []
    if not videos:
        frames = torch.rand(3, t, height, width, generator=torch.Generator().manual_seed(0))
    else:
        frames, _ = read_video(videos[0], num_frames=t, size=height)
        frames = frames[..., :width]
    return pad_to_multiple(frames[None], (8, 32, 32))[0]


def start_up(args: argparse.Namespace, backend: str, precision: str, cache: Path) -> dict:
    """A fresh process: import, load, ``compile_model`` for the window's shape, one call."""
    env = {
        **os.environ,
        "CENTRIFUGE_CACHE": str(cache),
        "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
    }
    cmd = [sys.executable, __file__, "--child", backend, precision, *_shape_args(args)]
    started = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def _shape_args(args: argparse.Namespace) -> list[str]:
    return ["--clip", args.clip, "--threads", str(args.threads), "--data", str(args.data)]


def child(args: argparse.Namespace, backend: str, precision: str) -> None:
    t0 = time.perf_counter()
    model = load_model("small")
    x = window(args.data, *_clip(args))
    t1 = time.perf_counter()
    runner = compile_model(model, tuple(x.shape), backend=backend, precision=precision)
    t2 = time.perf_counter()
    runner(x)
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "load_s": t1 - t0,
                "prepare_s": t2 - t1,
                "first_call_s": t3 - t2,
                "backend": runner.backend,
                "precision": runner.precision,
                "notice": runner.notice,
            }
        )
    )


def _clip(args: argparse.Namespace) -> tuple[int, int, int]:
    t, h, w = (int(v) for v in args.clip.split("x"))
    return t, h, w


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Absolute difference in 8-bit output levels (what the layer videos hold)."""
    return ((a.clamp(0, 1) * 255).round() - (b.clamp(0, 1) * 255).round()).abs()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["torch", "openvino", "compile"])
    p.add_argument("--precisions", nargs="+", default=None, help="default: f32, bf16 if native")
    p.add_argument("--clip", default="32x224x398", help="TxHxW before padding (224x416 after)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--data", type=Path, default=VAL, help="a folder of videos (first one used)")
    p.add_argument("--child", nargs=2, metavar=("BACKEND", "PRECISION"), help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="default bench/results/engine-cpu.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_allocator()  # as the command line does
    if args.child:
        child(args, *args.child)
        return
    precisions = args.precisions or (["f32", "bf16"] if cpu_has_native_bf16() else ["f32"])
    variants = [(b, pr) for b in args.backends for pr in precisions if b != "torch" or pr == "f32"]
    info = machine()
    info["loadavg_start"] = os.getloadavg()
    info["native_bf16"] = cpu_has_native_bf16()
    x = window(args.data, *_clip(args))
    result = {"machine": info, "input": list(x.shape), "rounds": args.rounds, "rows": []}
    rows = result["rows"]

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        runners, startup = {}, {}
        for backend, precision in variants:
            cache = Path(tmp) / f"{backend}-{precision}"
            cold = start_up(args, backend, precision, cache)
            warm = start_up(args, backend, precision, cache)
            startup[(backend, precision)] = (cold, warm)
            print(f"{backend} {precision}: start-up cold {cold}, warm {warm}", flush=True)
            os.environ["CENTRIFUGE_CACHE"] = str(cache)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
            runners[(backend, precision)] = compile_model(
                load_model("small"), tuple(x.shape), backend=backend, precision=precision
            )
        reference = runners[("torch", "f32")](x) if ("torch", "f32") in runners else None
        times: dict = {key: [] for key in runners}
        loads = []
        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for key, runner in runners.items():
                started = time.perf_counter()
                out = runner(x)
                times[key].append((time.perf_counter() - started) * 1000)
        base = median(times[("torch", "f32")]) if reference is not None else None
        for key, runner in runners.items():
            cold, warm = startup[key]
            ms = median(times[key])
            row = {
                "backend": runner.backend,
                "precision": runner.precision,
                "ms_per_window": ms,
                "frames_per_s": x.shape[2] / (ms / 1000),
                "speed_vs_eager": base / ms if base else None,
                "ms_all": [round(v) for v in times[key]],
                "prepare_cold_s": cold["prepare_s"],
                "prepare_warm_s": warm["prepare_s"],
                "process_cold_s": cold["process_s"],
                "process_warm_s": warm["process_s"],
                "notice": runner.notice,
            }
            if reference is not None:
                out = runner(x)
                diff = (out - reference).abs()
                lv = levels(out, reference)
                row |= {
                    "max_abs": float(diff.max()),
                    "mean_abs": float(diff.mean()),
                    "max_levels": float(lv.max()),
                    "mean_levels": float(lv.mean()),
                }
            rows.append(row)
        info["loadavg_rounds"] = loads
        info["loadavg_end"] = os.getloadavg()
    print()
    print_table(
        rows,
        [
            "backend",
            "precision",
            "ms_per_window",
            "frames_per_s",
            "speed_vs_eager",
            "prepare_cold_s",
            "prepare_warm_s",
            "process_warm_s",
            "max_abs",
            "mean_levels",
            "max_levels",
        ],
    )
    print(f"load average: start {info['loadavg_start']}, rounds {loads}, end {info['loadavg_end']}")
    write_json("engine-cpu", result, args.json)


if __name__ == "__main__":
    main()
