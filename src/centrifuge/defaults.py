"""How ``separate`` works unless told otherwise: one place for the library, the command line, the
demo and the web page (this module imports nothing heavy, so the CLI can read it before torch
loads). The library reads no environment variable: the command line passes what it reads."""

from __future__ import annotations

from typing import Literal

CLIP_LEN = 32  # frames per window
OVERLAP = 8  # frames shared by consecutive windows
TILE = 768  # largest processed tile side in pixels; bigger frames are tiled
TILE_OVERLAP = 32  # pixels shared by neighbouring tiles

# -- size: the short side the model sees ------------------------------------------------------
# a short side in pixels, "auto", or None (native size); the Separator plans the shapes from it
Size = int | Literal["auto"] | None
SIZE: Size = "auto"
# size "auto": a residual model runs at a short side of AUTO_SIDE pixels (native when the input is
# no larger) and its predicted differences are upsampled onto the full-size input. Chosen by
# bench/size_rule.py (bench/RESULTS.md, "size auto"): on validation blends of 192, 256 and
# (upscaled) 360-px content, 128 px wrote layers as good as or better than 96, 112, 160, half the
# short side and native, for a fraction of native's model time.
AUTO_SIDE = 128
MIN_SIZE = 32  # the smallest short side accepted
SIZE_CHOICES = ("auto", "native", "112", "160", "224", "320", "480")  # offered by the web page

# -- backend: how the model runs (centrifuge.inference.engine) ----------------------------------
BACKENDS = ("auto", "openvino", "compile", "torch")
BACKEND = "auto"  # the fastest correct one on this machine
BACKEND_ENV = "CENTRIFUGE_BACKEND"  # read by the command line only: its default for --backend


def parse_size(text: str | int | None) -> Size:
    """``"auto"`` -> ``"auto"``, ``"native"`` or ``None`` -> ``None``, a number of pixels (at
    least :data:`MIN_SIZE`) -> ``int``.

    Raises:
        ValueError: anything else, in one sentence.
    """
    if text is None or text == "native":
        return None
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"size must be 'auto', 'native' or a number of pixels: {text!r}") from None
    if value < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {value}")
    return value
