"""Turn a training checkpoint into a shippable safetensors weights file (architecture in metadata).

    python scripts/export_weights.py RUN/last.pt src/centrifuge/weights/small.safetensors
    python scripts/export_weights.py RUN/last.pt OUT/small.safetensors --parts 2   # for size limits
    python scripts/export_weights.py RUN/last.pt OUT/small.safetensors --half   # fp16 parameters
    python scripts/export_weights.py --join OUT/small.part1.safetensors \
        OUT/small.part2.safetensors src/centrifuge/weights/small.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from centrifuge.checkpoint import load_checkpoint, read_weights, spec_from_record, write_weights


def halve(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point parameters as fp16 (half the file; loading casts them back to the model's
    fp32). BatchNorm statistics and integer buffers keep their type."""
    return {
        k: v.half() if v.is_floating_point() and "running_" not in k else v
        for k, v in state.items()
    }


def export(ckpt_path: str, out: str, parts: int, half: bool = False) -> None:
    ckpt = load_checkpoint(ckpt_path)
    state, spec = ckpt["model"], spec_from_record(ckpt, ckpt_path)
    extra = {"step": str(ckpt["step"]), "config": json.dumps(ckpt["config"])}
    if half:
        state = halve(state)
        extra["dtype"] = "float16"
    if parts == 1:
        write_weights(state, out, spec=spec, extra=extra)
        print(out)
        return
    keys = list(state)
    total = sum(state[k].numel() * state[k].element_size() for k in keys)
    chunk, size, index = {}, 0, 1
    for key in keys:
        chunk[key] = state[key]
        size += state[key].numel() * state[key].element_size()
        if size >= total / parts and index < parts:
            target = Path(out).with_suffix(f".part{index}.safetensors")
            write_weights(chunk, target, spec=spec, extra=extra)
            print(target)
            chunk, size, index = {}, 0, index + 1
    target = Path(out).with_suffix(f".part{index}.safetensors")
    write_weights(chunk, target, spec=spec, extra=extra)
    print(target)


def join(part_paths: list[str], out: str) -> None:
    state, spec, meta = {}, None, {}
    for path in part_paths:
        tensors, spec, meta = read_weights(path)
        state.update(tensors)
    extra = {k: v for k, v in meta.items() if k not in ("model_name", "model_kwargs")}
    write_weights(state, out, spec=spec, extra=extra)
    print(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--parts", type=int, default=1)
    parser.add_argument("--join", action="store_true")
    parser.add_argument("--half", action="store_true", help="store parameters as fp16")
    args = parser.parse_args()
    if args.join:
        join(args.paths[:-1], args.paths[-1])
    else:
        export(args.paths[0], args.paths[1], args.parts, args.half)


if __name__ == "__main__":
    main()
