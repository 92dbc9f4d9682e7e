"""The paper's downstream protocol (Sec. 4.1): classify mixed, separated and clean clips.

Given a video classifier supplied by the user, each blended pair of labelled videos is scored
1 / 0.5 / 0 by how many of its two labels the classifier recovers with two predictions:

* mixed: the classifier's top-2 classes on the blend;
* separated: the top-1 class of each of the two most dissimilar layers the model outputs;
* clean: the top-1 class of each of the two original clips.

The classifier is a ``torch.export`` archive (``torch.export.save``; no pickled Python code) of a
module that maps one clip ``[1, 3, T, H, W]`` of floats in ``[0, 1]`` (the evaluation clip size) to
logits ``[1, n_classes]``. Class ``i`` is the i-th label of ``classes`` (default: the sorted class
folder names of the data folder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch

from centrifuge.data.index import scan_folder
from centrifuge.data.validation import iter_pairs, validation_pairs
from centrifuge.errors import CentrifugeError, ModelError
from centrifuge.losses import most_dissimilar

__all__ = ["downstream_accuracy", "load_classifier", "pair_score"]


def pair_score(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """1 if the two predictions recover both labels, 0.5 if one, 0 if none (best pairing)."""
    p, q = predictions
    a, b = labels
    return max((p == a) + (q == b), (p == b) + (q == a)) / 2


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> Callable:
    """A video classifier saved by ``torch.export.save``, as a callable on ``[1, C, T, H, W]``."""
    try:
        program = torch.export.load(str(path))
    except FileNotFoundError:
        raise ModelError(f"{path}: no such classifier file.") from None
    except Exception as exc:  # torch.export raises several types for foreign files
        raise ModelError(
            f"{path}: not a torch.export classifier ({exc.__class__.__name__})."
        ) from exc
    return program.module().to(device)


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
        chosen = pred[0, most_dissimilar(pred)[0]]  # [2, C, T, S, S]
        separated = _classify(classifier, chosen).argmax(dim=1).tolist()
        originals = _classify(classifier, clean).argmax(dim=1).tolist()
        totals["mixed"] += pair_score(top2, truth)
        totals["separated"] += pair_score(separated, truth)
        totals["clean"] += pair_score(originals, truth)
    n = len(specs)
    return {**{k: v / n for k, v in totals.items()}, "pairs": n}
