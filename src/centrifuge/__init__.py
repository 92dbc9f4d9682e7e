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

from centrifuge.checkpoint import load_checkpoint
from centrifuge.data.blend import blend, make_mixtures
from centrifuge.errors import CentrifugeError
from centrifuge.evaluate import Report, evaluate
from centrifuge.inference import Separator, separate
from centrifuge.losses import pit_loss
from centrifuge.models import build_model
from centrifuge.pretrained import load_model
from centrifuge.video.io import read_video, write_video

__version__ = "0.1.0"

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
