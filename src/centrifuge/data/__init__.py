"""Datasets of real videos and the blending that turns them into training mixtures."""

from centrifuge.data.bank import ClipBank, build_bank
from centrifuge.data.blend import COLOURS, blend, colour_layer, freeze_clips, make_mixtures
from centrifuge.data.folder import ClipSpec, RandomClips, StreamSampler, VideoFolder
from centrifuge.data.index import VideoEntry, scan_folder

__all__ = [
    "COLOURS",
    "ClipBank",
    "ClipSpec",
    "RandomClips",
    "StreamSampler",
    "VideoEntry",
    "VideoFolder",
    "blend",
    "build_bank",
    "colour_layer",
    "freeze_clips",
    "make_mixtures",
    "scan_folder",
]
