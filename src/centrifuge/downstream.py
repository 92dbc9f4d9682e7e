"""The paper's downstream protocol (Sec. 4.1): classify mixed, separated and clean clips.

Given a video classifier supplied by the user, each blended pair of labelled videos is scored
1 / 0.5 / 0 by how many of its two labels the classifier recovers with two predictions:

* mixed: the classifier's top-2 classes on the blend;
* separated: the top-1 class of each of the two layers ``separate`` writes (the cluster means);
* clean: the top-1 class of each of the two original clips.

The classifier is a ``.safetensors`` file written by :func:`save_classifier`: the weights, and in
the metadata a JSON list of layers from a fixed vocabulary (:data:`CLASSIFIER_LAYERS`: 3D
convolution, batch norm, ReLU, pooling, flatten, linear, dropout), rebuilt here as an
``nn.Sequential``. Loading it runs no code from the file. Formats that can (``torch.export``
archives, TorchScript, ``torch.save`` pickles) are refused, whatever their extension. The network
maps one clip ``[1, 3, T, H, W]`` of floats in ``[0, 1]`` (the evaluation clip size) to logits
``[1, n_classes]``. Class ``i`` is the i-th label of ``classes`` (default: the sorted class folder
names of the data folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.errors import CentrifugeError, ModelError
from centrifuge.inference.report import written_layers
from centrifuge.utils import atomic_path

__all__ = [
    "CLASSIFIER_LAYERS",
    "downstream_accuracy",
    "load_classifier",
    "pair_score",
    "save_classifier",
]


def pair_score(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """1 if the two predictions recover both labels, 0.5 if one, 0 if none (best pairing)."""
    p, q = predictions
    a, b = labels
    return max((p == a) + (q == b), (p == b) + (q == a)) / 2


# Layer type -> (module class, constructor arguments kept in the file's metadata).
CLASSIFIER_LAYERS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "conv3d": (
        nn.Conv3d,
        ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups"),
    ),
    "batchnorm3d": (nn.BatchNorm3d, ("num_features", "eps", "momentum")),
    "relu": (nn.ReLU, ()),
    "maxpool3d": (nn.MaxPool3d, ("kernel_size", "stride", "padding")),
    "avgpool3d": (nn.AvgPool3d, ("kernel_size", "stride", "padding")),
    "adaptiveavgpool3d": (nn.AdaptiveAvgPool3d, ("output_size",)),
    "flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "linear": (nn.Linear, ("in_features", "out_features")),
    "dropout": (nn.Dropout, ("p",)),
}
MAX_CLASSIFIER_LAYERS = 256
MAX_CLASSIFIER_WIDTH = 8192  # channels or features of one layer


def _runs_code(path: str | os.PathLike) -> bool:
    """Whether a file looks like a zip (torch.save, torch.export, TorchScript) or a pickle."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    zipped = head.startswith(b"PK\x03\x04")
    return zipped or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5)


def _spec_of(module: nn.Module) -> dict[str, Any]:
    for name, (cls, args) in CLASSIFIER_LAYERS.items():
        if type(module) is cls:
            spec: dict[str, Any] = {"type": name}
            for arg in args:
                value = getattr(module, arg)
                spec[arg] = list(value) if isinstance(value, tuple) else value
            if name in ("conv3d", "linear"):
                spec["bias"] = module.bias is not None
            return spec
    raise ModelError(
        f"cannot save a {type(module).__name__} layer: a classifier is built from "
        f"{', '.join(CLASSIFIER_LAYERS)}."
    )


def save_classifier(model: nn.Sequential, path: str | os.PathLike) -> Path:
    """Save an ``nn.Sequential`` of :data:`CLASSIFIER_LAYERS` as a code-free safetensors file."""
    layers = [_spec_of(module) for module in model]
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"classifier": json.dumps(layers)})
    return path


def _build_layer(spec: object, path: str | os.PathLike) -> nn.Module:
    if not isinstance(spec, dict) or spec.get("type") not in CLASSIFIER_LAYERS:
        raise ModelError(f"{path}: unknown classifier layer {spec!r:.60}.")
    cls, args = CLASSIFIER_LAYERS[spec["type"]]
    unknown = set(spec) - {"type", "bias", *args}
    if unknown:
        raise ModelError(f"{path}: unknown {spec['type']} setting {sorted(unknown)[0]!r}.")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k in args}
    for key, value in kwargs.items():
        values = value if isinstance(value, tuple) else (value,)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or any(
            not 0 <= v <= MAX_CLASSIFIER_WIDTH for v in values if key != "end_dim"
        ):
            raise ModelError(f"{path}: invalid {spec['type']} setting {key}={value!r:.40}.")
    if "bias" in spec:
        kwargs["bias"] = bool(spec["bias"])
    try:
        with torch.device("meta"):  # sizes only: the weights come from the file
            return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: invalid {spec['type']} layer ({exc}).") from None


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> nn.Module:
    """A classifier saved by :func:`save_classifier`, as a module on ``[1, C, T, H, W]``.

    Raises:
        ModelError: a missing file, a format that can run code when loaded (refused before it is
        parsed), or a file that is not such a classifier.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
        layers = json.loads(meta["classifier"])
    except FileNotFoundError:
        raise ModelError(f"{path}: no such classifier file.") from None
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        if _runs_code(path):
            raise ModelError(
                f"{path}: refused: torch.export, TorchScript and torch.save files can run code "
                "when loaded; save the classifier with centrifuge.downstream.save_classifier."
            ) from None
        raise ModelError(
            f"{path}: not a centrifuge classifier file ({exc.__class__.__name__})."
        ) from None
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_CLASSIFIER_LAYERS:
        raise ModelError(f"{path}: the classifier's layer list is invalid.")
    model = nn.Sequential(*(_build_layer(spec, path) for spec in layers))
    expected = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    got = {k: tuple(v.shape) for k, v in state.items()}
    wrong = sorted(set(got) ^ set(expected)) or [k for k in expected if got[k] != expected[k]]
    if wrong:
        raise ModelError(
            f"{path}: the weights do not fit the classifier's layers (tensor {wrong[0]})."
        )
    model = model.to_empty(device="cpu")
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            buffer.zero_()
    model.load_state_dict(state, strict=False)
    return model.eval().to(device)


def _classify(classifier: Callable, clips: torch.Tensor) -> torch.Tensor:
    """Logits ``[B, n_classes]`` for clips ``[B, C, T, H, W]``, one clip at a time."""
    return torch.cat([classifier(clip[None]) for clip in clips])


@torch.no_grad()
def downstream_accuracy(
    classifier: Callable,
    model: torch.nn.Module,
    data: str | os.PathLike,
    *,
    classes: Sequence[str] | None = None,
    pairs: int = 64,
    seed: int = 0,
    clip_len: int = 32,
    size: int = 112,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Mean pair scores ``{"mixed", "separated", "clean", "pairs"}`` on fixed blends of ``data``.

    Raises:
        CentrifugeError: the folder has no class labels, or a label is not among ``classes``.
    """
    entries = scan_folder(data)
    labels = sorted({e.label for e in entries if e.label is not None})
    if not labels:
        raise CentrifugeError(
            f"{data}: the downstream protocol needs labelled videos (root/<class>/...)."
        )
    classes = list(classes) if classes is not None else labels
    missing = [name for name in labels if name not in classes]
    if missing:
        raise CentrifugeError(
            f"label {missing[0]!r} of {data} is not one of the classifier's classes."
        )
    index = {name: i for i, name in enumerate(classes)}
    specs = validation_pairs(entries, pairs, seed, clip_len)
    model = model.to(device).eval()
    totals = {"mixed": 0.0, "separated": 0.0, "clean": 0.0}
    for spec, (a, b) in zip(specs, iter_pairs(entries, specs, clip_len, size)):
        truth = (index[entries[spec.video_a].label], index[entries[spec.video_b].label])
        clean = torch.stack([a, b]).to(device)  # [2, C, T, S, S]
        mixture = clean.mean(dim=0, keepdim=True)  # [1, C, T, S, S]
        top2 = _classify(classifier, mixture).topk(2, dim=1).indices[0].tolist()
        pred = model(mixture).float().clamp(0, 1)  # [1, N, C, T, S, S]
        chosen = written_layers(pred, mixture)[0]  # [2, C, T, S, S], as separate writes them
        separated = _classify(classifier, chosen).argmax(dim=1).tolist()
        originals = _classify(classifier, clean).argmax(dim=1).tolist()
        totals["mixed"] += pair_score(top2, truth)
        totals["separated"] += pair_score(separated, truth)
        totals["clean"] += pair_score(originals, truth)
    n = len(specs)
    return {**{k: v / n for k, v in totals.items()}, "pairs": n}
