"""End-to-end `centrifuge separate` speed and peak memory on this machine.

Inputs are made from real clips (../shared/data/train, concatenated and resized to the asked short
side) so that they have real content; each run is a fresh process (`python -m centrifuge separate`),
timed as a whole (decode, separate, encode, preview, contact sheet) and measured for peak RSS.

    python bench/separate.py --data ../shared/data/train --sizes 224 360 --seconds 10 60
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
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


def run_separate(video: Path, out: Path, args) -> dict:
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
        "--force",
    ]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    peak_kb = int(done.stderr.split("PEAK_RSS_KB")[-1].split()[0])
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True, help="folder of real clips to build inputs from")
    p.add_argument("--model", default="small")
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 360])
    p.add_argument("--seconds", nargs="+", type=float, default=[10, 60])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seconds in sorted(args.seconds):
            for short in sorted(args.sizes):
                video = make_input(
                    Path(args.data), short, seconds, tmp / f"in_{short}_{seconds}.mp4"
                )
                result = run_separate(video, tmp / "out", args)
                frames = int(seconds * FPS)
                rows.append(
                    {
                        "input": f"{short}p {seconds:g} s",
                        "frames": frames,
                        "seconds": result["seconds"],
                        "fps": frames / result["seconds"],
                        "peak_rss_mb": result["peak_rss_mb"],
                    }
                )
                print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, ["input", "frames", "seconds", "fps", "peak_rss_mb"])
    write_json("separate-cpu", {"machine": machine(), "model": args.model, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
