"""Running a trained model: everything ``centrifuge separate`` does, in the order a run goes.

* :mod:`~centrifuge.inference.files`: files on disk -> result folders (plan, one pass, choose,
  contact sheet, report); :func:`separate_file`, :func:`separate_inputs`, :class:`SeparateOptions`;
* :mod:`~centrifuge.inference.video_pass`: one pass over a video (separate, measure, encode) /
  :mod:`~centrifuge.inference.stills`: a still image;
* :mod:`~centrifuge.inference.separator`: the :class:`Separator` (windows in time, tiles in space,
  stable layer order) and :func:`separate` for frames in memory;
* :mod:`~centrifuge.inference.engine`: the model's forward pass (OpenVINO, torch.compile, eager);

with leaves: :mod:`~centrifuge.inference.cache_entries` (verified cache entries),
:mod:`~centrifuge.inference.detail` (residual detail upsampling),
:mod:`~centrifuge.inference.prefetch` (decoding ahead in a thread),
:mod:`~centrifuge.inference.report` (the layer choice, statistics and ``report.json``),
:mod:`~centrifuge.inference.preview` (``preview.mp4``, ``contact.png``) and
:mod:`~centrifuge.inference.results` (result folders: names, locks, all-or-nothing).

The names below are imported on first use, so that importing a leaf stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_FACE = {
    "SeparateOptions": "centrifuge.inference.files",
    "Separator": "centrifuge.inference.separator",
    "separate": "centrifuge.inference.separator",
    "separate_file": "centrifuge.inference.files",
    "separate_inputs": "centrifuge.inference.files",
}

__all__ = ["SeparateOptions", "Separator", "separate", "separate_file", "separate_inputs"]


def __getattr__(name: str):
    if name in _FACE:
        value = getattr(importlib.import_module(_FACE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'centrifuge.inference' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FACE])


if TYPE_CHECKING:
    from centrifuge.inference.files import SeparateOptions, separate_file, separate_inputs
    from centrifuge.inference.separator import Separator, separate
