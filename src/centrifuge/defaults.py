"""How ``separate`` works unless told otherwise: one place for the library, the command line and the
web page (this module imports nothing heavy, so the CLI can read it before torch loads)."""

import os

CLIP_LEN = 32  # frames per window
OVERLAP = 8  # frames shared by consecutive windows
TILE = 768  # largest processed tile side in pixels; bigger frames are tiled
TILE_OVERLAP = 32  # pixels shared by neighbouring tiles
# size "auto": a residual model runs at half the short side (at least AUTO_MIN_SIDE pixels) and
# its predicted differences are upsampled onto the full-size input (bench/residual.py: at 224 px,
# half size scored as well as native on the validation blends, for a third of the model's time)
AUTO_MIN_SIDE = 112
BACKENDS = ("auto", "openvino", "compile", "torch")


def backend() -> str:
    """The inference backend when none is given: ``$CENTRIFUGE_BACKEND``, else ``auto`` (the
    fastest correct one on this machine, see :mod:`centrifuge.inference.engine`)."""
    return os.environ.get("CENTRIFUGE_BACKEND", "auto")
