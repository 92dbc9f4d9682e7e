"""centrifuge: split a video into layers (The Visual Centrifuge, Alayrac et al., CVPR 2019).

Data flow::

    frames, fps = read_video(path)                     # [C, T, H, W] float32 in [0, 1]
    clips = next(iter(loader))                         # [B*K, C, T, H, W] independent clips
    layers, mixture, w = make_mixtures(clips, 2)       # [B, K, C, T, H, W], [B, C, T, H, W]
    pred = model(mixture)                              # [B, N, C, T, H, W] (N >= K hypotheses)
    loss, match = pit_loss(pred, layers)               # scalar, [B, K]
    out = separate(model, frames, clip_len=32, overlap=8)   # [N, C, T, H, W]
    write_video("layer_1.mp4", out[0].clamp(0, 1), fps)

Public API: :func:`load_model`, :func:`build_model`, :func:`separate`, :func:`read_video`,
:func:`write_video`, :func:`blend`, :func:`make_mixtures`, :func:`pit_loss`, :func:`evaluate`,
:func:`load_checkpoint`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

from centrifuge.errors import CentrifugeError
from centrifuge.version import __version__ as __version__

# The public API, imported on first use (PEP 562): ``import centrifuge`` and the command line's
# ``--help`` stay instant; torch is loaded by the first name that needs it.
_LAZY = {
    "Report": "centrifuge.evaluate",
    "Separator": "centrifuge.inference",
    "blend": "centrifuge.data.blend",
    "build_model": "centrifuge.models",
    "evaluate": "centrifuge.evaluate",
    "load_checkpoint": "centrifuge.checkpoint",
    "load_model": "centrifuge.pretrained",
    "make_mixtures": "centrifuge.data.blend",
    "pit_loss": "centrifuge.losses",
    "read_video": "centrifuge.video.read",
    "separate": "centrifuge.inference",
    "write_video": "centrifuge.video.write",
}

__all__ = [
    "CentrifugeError",
    "Report",
    "Separator",
    "blend",
    "build_model",
    "evaluate",
    "load_checkpoint",
    "load_model",
    "make_mixtures",
    "pit_loss",
    "read_video",
    "separate",
    "write_video",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'centrifuge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """Loading the submodule ``centrifuge.evaluate`` must not hide the function ``evaluate``."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # the public function keeps the name; the submodule stays in sys.modules
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from centrifuge.checkpoint import load_checkpoint
    from centrifuge.data.blend import blend, make_mixtures
    from centrifuge.evaluate import Report, evaluate
    from centrifuge.inference import Separator, separate
    from centrifuge.losses import pit_loss
    from centrifuge.models import build_model
    from centrifuge.pretrained import load_model
    from centrifuge.video.read import read_video
    from centrifuge.video.write import write_video
