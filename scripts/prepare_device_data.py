"""Copy ../shared/data at training resolution into an ignored folder that travels to a GPU machine.

The device machine receives only the repository (at most 64 MiB), so the training clips are
re-encoded at a small size with our own writer: train/ at a short side of 130 px (the clip bank
then resizes to 129 = 1.15 x 112), val/ at 112 px, photos/ at 258 px as JPEG.

    python scripts/prepare_device_data.py ../shared/data .gpu/data
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from centrifuge.data.index import find_videos
from centrifuge.video.io import IMAGE_EXTENSIONS, VideoReader, VideoWriter


def reencode(src: Path, dst: Path, short: int) -> None:
    reader = VideoReader(src, size=short)
    h, w = reader.shape
    with VideoWriter(
        dst, fps=reader.info.rate, width=w, height=h, crf=19, preset="slow", overwrite=True
    ) as writer:
        for frame in reader:
            writer.write(frame[None])


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    for split, short in (("train", 130), ("val", 112)):
        for video in find_videos(source / split):
            reencode(video, target / split / f"{video.stem}.mp4", short)
    (target / "photos").mkdir(parents=True, exist_ok=True)
    for photo in sorted((source / "photos").iterdir()):
        if photo.suffix.lower() in IMAGE_EXTENSIONS:
            image = Image.open(photo).convert("RGB")
            scale = 258 / min(image.size)
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS
            )
            image.save(target / "photos" / f"{photo.stem}.jpg", quality=92)
    total = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"{target}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
