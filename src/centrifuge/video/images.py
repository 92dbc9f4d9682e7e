"""Image inputs: one picture, or a folder of numbered pictures read as a video (natural sort)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from centrifuge.errors import VideoError
from centrifuge.video.container import (
    IMAGE_EXTENSIONS,
    INPUT_ERRORS,
    open_container,
    video_stream,
)
from centrifuge.video.convert import to_array
from centrifuge.video.orientation import orientation

__all__ = ["IMAGE_FOLDER_FPS", "decode_image", "image_sequence"]

IMAGE_FOLDER_FPS = 25.0


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def image_sequence(path: Path) -> list[Path] | None:
    """The pictures of an image input (a folder of numbered images, or one image), in order;
    ``None`` for a video file."""
    if not path.is_dir():
        return [path] if path.suffix.lower() in IMAGE_EXTENSIONS else None
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def decode_image(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 ``[H, W, 3]`` as shown (resized to ``shape = (H, W)`` when given)."""
    with open_container(path) as container:
        stream = video_stream(container, path)
        try:
            frame = next(container.decode(stream))
        except StopIteration:
            raise VideoError(f"{path}: the image holds no decodable picture.") from None
        except INPUT_ERRORS as exc:
            raise VideoError(f"{path}: the image is corrupt ({exc.__class__.__name__}).") from exc
        return to_array(path, frame, shape, turn=orientation(frame))
