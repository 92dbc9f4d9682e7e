"""Does separate's cheaper layer choice pick the same layers? (issue 17)

`centrifuge separate` chooses which outputs become layer_1 and layer_2 from statistics over the
video. To save time it measures every 4th frame (`report.STATS_EVERY`) and chooses on the first
finished frames (then checks the choice at the end and separates again if it changed). This
benchmark separates real videos once and compares, per video, the choice made from every frame,
from every 4th frame, and from the first window's frames only; "windows agreeing" counts the
windows whose frames alone would choose the same layers in the same order (a layer that keeps its
identity over the whole video).

    python bench/choice.py ../shared/data/layered
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data.index import find_videos
from centrifuge.inference.report import STATS_EVERY, LayerStats
from centrifuge.inference.separator import Separator
from centrifuge.losses.grouping import Group
from centrifuge.pretrained import load_model
from centrifuge.video.read import VideoReader
from common import machine, print_table, write_json


def choices(separator: Separator, path: Path, which: str) -> dict:
    """The layers chosen from every frame, every ``STATS_EVERY``-th frame and the first chunk."""
    every = LayerStats(separator.n_outputs)
    sampled = LayerStats(separator.n_outputs, every=STATS_EVERY)
    early: list[Group] | None = None
    windows: list[list[Group]] = []  # the choice each window alone would make
    frames = 0
    for start, layers, inputs in separator.stream(VideoReader(path, size=separator.size)):
        every.add(layers, inputs, start)
        sampled.add(layers, inputs, start)
        alone = LayerStats(separator.n_outputs)
        alone.add(layers, inputs, start)
        windows.append(alone.choose(which))
        if early is None:
            early = sampled.choose(which)
        frames = start + layers.shape[2]
    return {
        "frames": frames,
        "all_frames": every.choose(which),
        "every_nth": sampled.choose(which),
        "first_chunk": early,
        "windows": windows,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("folders", nargs="+", help="folders of real videos")
    p.add_argument("--model", default="small")
    p.add_argument("--size", type=int, default=128, help="processing short side (auto: 128)")
    p.add_argument("--layers", choices=["2", "all"], default="2")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = load_model(args.model)
    separator = Separator(model, size=args.size, backend="torch")
    rows = []
    for folder in args.folders:
        for path in find_videos(folder):
            if path.suffix.lower() in {".png", ".jpg", ".jpeg"}:
                continue  # a still has one frame: nothing to sample
            c = choices(separator, Path(path), args.layers)
            rows.append(
                {
                    "video": Path(path).name[:40],
                    "frames": c["frames"],
                    "all frames": str(c["all_frames"]),
                    f"every {STATS_EVERY}th": str(c["every_nth"]),
                    "first chunk": str(c["first_chunk"]),
                    "same (every)": c["every_nth"] == c["all_frames"],
                    "same (first)": c["first_chunk"] == c["all_frames"],
                    "windows agreeing": (
                        f"{sum(w == c['all_frames'] for w in c['windows'])}/{len(c['windows'])}"
                    ),
                }
            )
            print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    same_every = sum(r["same (every)"] for r in rows)
    same_first = sum(r["same (first)"] for r in rows)
    print(
        f"\nevery {STATS_EVERY}th frame: same choice on {same_every}/{len(rows)} videos; "
        f"first chunk: {same_first}/{len(rows)} (a different first choice costs a second pass)"
    )
    write_json(
        "choice",
        {"machine": machine(), "model": args.model, "size": args.size, "rows": rows},
        args.json,
    )


if __name__ == "__main__":
    main()
