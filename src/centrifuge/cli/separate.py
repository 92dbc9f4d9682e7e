"""``centrifuge separate``: split videos or images into layers (the main job)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from centrifuge import defaults
from centrifuge.cli.common import Progress, add_backend, add_model_and_device, size_arg
from centrifuge.errors import CentrifugeError


def _missing(items: list[str]) -> list[str]:
    """Inputs that do not exist, each reported in one line (checked before torch is imported)."""
    missing = [item for item in items if not os.path.exists(item)]
    for item in missing:
        print(f"centrifuge separate: error: {item}: no such file or folder.", file=sys.stderr)
    return missing


def _videos_in(folder: str) -> list[Path]:
    """The videos and images of a folder, leaving out results of earlier runs (``-o`` may be
    inside it)."""
    from centrifuge.data.index import find_videos
    from centrifuge.inference.results import in_result_folder

    return [v for v in find_videos(folder) if not in_result_folder(v, Path(folder))]


def cmd_separate(args: argparse.Namespace) -> int:
    if args.clip_len < 1 or not 0 <= args.overlap < args.clip_len:
        raise CentrifugeError("need --clip-len > --overlap >= 0.")
    if args.tile is not None and args.tile <= 64:
        raise CentrifugeError(f"--tile must be more than 64 pixels, got {args.tile}.")
    missing = _missing(args.inputs)
    if len(missing) == len(args.inputs):
        return 2
    shown = Progress()
    shown.status(f"loading the model {args.model!r} ...")
    from centrifuge.distributed import distributed_share
    from centrifuge.inference import SeparateOptions, Separator, separate_inputs
    from centrifuge.pretrained import load_model
    from centrifuge.utils import pick_device

    found = [item for item in args.inputs if item not in missing]
    inputs = [v for item in found for v in (_videos_in(item) if os.path.isdir(item) else [item])]
    if not inputs:
        raise CentrifugeError("no input videos or images found.")
    inputs, device = distributed_share(inputs, pick_device(args.device))
    shown.status(f"loading the model {args.model!r} on {device} ...")
    model = load_model(args.model, device=device)
    separator = Separator(
        model,
        clip_len=args.clip_len,
        overlap=args.overlap,
        size=args.size,
        tile=args.tile,
        device=device,
        backend=args.backend,
    )
    options = SeparateOptions(layers=args.layers, force=args.force)
    failed = len(missing)
    try:
        for path, result in separate_inputs(
            separator,
            inputs,
            args.output,
            options,
            model_name=str(args.model),
            progress=shown.update,
            on_step=shown.stage,
        ):
            shown.close(path)
            failed += not _print_result(path, result, args.output)
    finally:
        shown.close()
    return 2 if failed else 0


def _print_result(path: str, result: dict | CentrifugeError, output: str) -> bool:
    """One line per input: where its files went, or why it failed. Returns success."""
    if isinstance(result, CentrifugeError):
        print(f"centrifuge separate: error: {result}", file=sys.stderr)
        return False
    from centrifuge.inference.results import result_folder

    folder = result_folder(output, path)
    if result["preview"] is None:  # a still image
        print(f"{path}: 1 image in {result['seconds']:.1f} s -> {folder}/")
        return True
    rate = result["frames"] / max(result["seconds"], 1e-9)
    print(
        f"{path}: {result['frames']} frames in {result['seconds']:.1f} s ({rate:.1f} fps) "
        f"-> {folder}/"
    )
    return True


SEPARATE_FILES = """\
writes, for each input, OUTDIR/<input name>/ with:
  layer_1.mp4, layer_2.mp4  the two most dissimilar layers, layer_1 the one closer to the input
                            (--layers all: every output, layer_1/layer_2 first, the rest after)
  preview.mp4               input and layers side by side, labelled
  contact.png               a grid of frames: input, then one row per layer
  report.json               settings, version, time, per-layer statistics
a still image (.png, .jpg, ...) gives layer_1.png, layer_2.png, contact.png and report.json;
a folder of numbered frames is one video; any other folder is searched for videos and images.
frame count, frame rate and audio are kept; nothing is overwritten without --force."""


def add_separate(sub) -> None:
    p = sub.add_parser(
        "separate",
        help="split videos or images into layers (the main job)",
        description="Split videos or images into layers with a trained model.",
        epilog=SEPARATE_FILES,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="video files, image files or folders of them"
    )
    p.add_argument("-o", "--output", default="separated", metavar="OUTDIR", help="output folder")
    add_model_and_device(p)
    p.add_argument(
        "--layers",
        choices=["2", "all"],
        default="2",
        help="the two most dissimilar layers, or all N outputs of the model",
    )
    p.add_argument("--clip-len", type=int, default=defaults.CLIP_LEN, help="frames per window")
    p.add_argument(
        "--overlap",
        type=int,
        default=defaults.OVERLAP,
        help="frames shared by consecutive windows",
    )
    p.add_argument(
        "--size",
        type=size_arg,
        default=defaults.SIZE,
        metavar="auto|native|SHORT_SIDE",
        help="process at this short side in pixels (faster); a residual model's differences are "
        "upsampled onto the full-size input, so the layers keep its detail. auto: a short side "
        f"of {defaults.AUTO_SIDE} (residual models, native when smaller; others: native)",
    )
    add_backend(p)
    p.add_argument(
        "--tile",
        type=int,
        default=defaults.TILE,
        help="largest spatial tile in pixels; bigger frames are processed in tiles",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_separate)
