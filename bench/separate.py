"""End-to-end `centrifuge separate` speed and peak memory on this machine, per backend and stage.

Inputs are made from real clips (../shared/data/train, concatenated and resized to the asked short
side) so that they have real content; each run is a fresh process (`python -m centrifuge separate
--backend B`), timed as a whole (start-up, decode, separate, encode, preview, contact sheet) and
measured for peak RSS; speeds are also given as ratios to the first backend. For the short inputs
the same separation then runs in this process with every stage timed (busy time per frame, in
whichever thread runs it), and start-up is the whole process's time minus that.

    python bench/separate.py --data ../shared/data/train --sizes 224 360 --seconds 10 60
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centrifuge.data.index import find_videos
from centrifuge.video.read import VideoReader
from centrifuge.video.write import VideoWriter
from common import machine, print_table, write_json

FPS = 30


def make_input(data: Path, short: int, seconds: float, path: Path) -> Path:
    """Concatenate real 16:9 clips, resized to ``short`` px high, into a ``seconds``-long video."""
    width = round(short * 16 / 9) // 2 * 2
    videos = [v for v in find_videos(data) if v.suffix == ".mp4"]
    total = int(seconds * FPS)
    written = 0
    with VideoWriter(path, fps=FPS, width=width, height=short, overwrite=True) as writer:
        while written < total:
            for video in videos:
                for frame in VideoReader(video, shape=(short, width)):
                    writer.write(frame[:, None])
                    written += 1
                    if written == total:
                        return path
    return path


_CHILD = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF)"
    ".ru_maxrss, file=sys.stderr))\n"
    "sys.argv = ['centrifuge', *sys.argv[1:]]\n"
    "runpy.run_module('centrifuge', run_name='__main__')\n"
)


def run_separate(video: Path, out: Path, args, backend: str) -> dict:
    """One `centrifuge separate` process: wall seconds and its own peak resident memory."""
    cmd = [
        sys.executable,
        "-c",
        _CHILD,
        "separate",
        str(video),
        "-o",
        str(out),
        "--model",
        args.model,
        "--device",
        "cpu",
        "--backend",
        backend,
        "--force",
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.split("PEAK_RSS_KB")[-1].split()[0])
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024}


# -- where the time goes, in this process -------------------------------------------------------
STAGES = {  # stage -> (module, attribute path) whose calls are timed, in whatever thread runs them
    "decode": ("centrifuge.video.read", "VideoReader.windows"),  # generator: time inside next()
    "model": ("centrifuge.inference.separator", "Separator._forward"),
    "resize": (
        "centrifuge.inference.separator",
        "resize",
    ),  # --size: layers back to the frames' size
    "align": ("centrifuge.inference.separator", "align_order"),
    "overlap-add": ("centrifuge.video.clips", "OverlapAdd.add"),
    "statistics": ("centrifuge.inference.report", "LayerStats.add"),
    "quantise": ("centrifuge.inference.video_pass", "quantize_frames"),
    "encode layers": ("centrifuge.video.write", "VideoWriter.write"),  # includes the preview's
    "preview": ("centrifuge.inference.preview", "PreviewWriter.write"),
    "contact sheet": ("centrifuge.inference.files", "write_contact_sheet"),
}


class StageClock:
    """Patches the functions of :data:`STAGES` to add up the seconds spent in each (all threads)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.lock = threading.Lock()
        self.undo: list[tuple[object, str, object]] = []

    def _add(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.seconds[stage] += seconds

    def _wrap(self, stage: str, fn):
        clock = self

        if inspect.isgeneratorfunction(fn):

            def timed_gen(*a, **k):
                it = fn(*a, **k)
                while True:
                    t0 = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        clock._add(stage, time.perf_counter() - t0)
                        return
                    clock._add(stage, time.perf_counter() - t0)
                    yield item

            return timed_gen

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                clock._add(stage, time.perf_counter() - t0)

        return timed

    def __enter__(self) -> StageClock:
        for stage, (module, path) in STAGES.items():
            owner = importlib.import_module(module)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name)
            self.undo.append((owner, name, original))
            setattr(owner, name, self._wrap(stage, original))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def staged_run(video: Path, out: Path, args, backend: str) -> dict:
    """``separate_file`` in this process with every stage timed: seconds per stage and in all."""
    from centrifuge.inference import SeparateOptions, Separator, separate_file
    from centrifuge.pretrained import load_model

    t0 = time.perf_counter()
    separator = Separator(load_model(args.model), size="auto", backend=backend)  # as the CLI
    loaded = time.perf_counter() - t0
    with StageClock() as clock:
        t0 = time.perf_counter()
        separate_file(separator, video, out, SeparateOptions(force=True))
        wall = time.perf_counter() - t0
    return {"load_s": loaded, "wall_s": wall, "stages_s": clock.seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="folder of real clips to build inputs from")
    p.add_argument("--model", default="small")
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 360])
    p.add_argument("--seconds", nargs="+", type=float, default=[10, 60])
    p.add_argument(
        "--backends", nargs="+", default=["auto", "torch"], help="the first is compared to the rest"
    )
    p.add_argument(
        "--stages-up-to", type=float, default=10, help="per-stage timing for inputs this long"
    )
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows, stage_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seconds in sorted(args.seconds):
            for short in sorted(args.sizes):
                name = f"{short}p {seconds:g} s"
                video = make_input(
                    Path(args.data), short, seconds, tmp / f"in_{short}_{seconds}.mp4"
                )
                frames = int(seconds * FPS)
                for backend in args.backends:
                    result = run_separate(video, tmp / "out", args, backend)
                    rows.append(
                        {
                            "input": name,
                            "backend": backend,
                            "frames": frames,
                            "seconds": result["seconds"],
                            "fps": frames / result["seconds"],
                            "peak_rss_mb": result["peak_rss_mb"],
                        }
                    )
                    print_table(rows[-1:], list(rows[-1]))
                    if seconds > args.stages_up_to:
                        continue
                    staged = staged_run(video, tmp / "staged", args, backend)
                    row = {"input": name, "backend": backend, "wall ms/frame": 0.0}
                    row["wall ms/frame"] = 1000 * staged["wall_s"] / frames
                    for stage, busy in staged["stages_s"].items():
                        row[stage] = 1000 * busy / frames
                    row["start-up s"] = result["seconds"] - staged["wall_s"]
                    stage_rows.append(row)
                    print_table(stage_rows[-1:], list(row))
    first = args.backends[0]
    for row in rows:
        base = next(r for r in rows if r["input"] == row["input"] and r["backend"] == first)
        row[f"speed vs {first}"] = base["seconds"] / row["seconds"]
    print()
    print_table(rows, [*rows[0]])
    if stage_rows:
        print("\nbusy milliseconds per frame, per stage (threads overlap: they add up to more than")
        print("the wall time); start-up = whole process minus the in-process separation")
        print_table(stage_rows, [*stage_rows[0]])
    write_json(
        "separate-cpu",
        {"machine": machine(), "model": args.model, "rows": rows, "stages": stage_rows},
        args.json,
    )


if __name__ == "__main__":
    main()
