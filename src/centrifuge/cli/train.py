"""``centrifuge train``, ``evaluate`` and ``reproduce``: the researcher's commands."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from centrifuge.cli.common import (
    Progress,
    add_device,
    add_model_and_device,
    progress_bar,
    status_line,
)

log = logging.getLogger("centrifuge")


def cmd_train(args: argparse.Namespace) -> int:
    from centrifuge.config import load_config
    from centrifuge.train import Trainer

    config = load_config(args.config, args.set)
    ignored = [s for s in args.set if not s.startswith("train.steps=")]
    if args.resume and ignored:  # the run continues with the config it was started with
        log.warning("--resume keeps the run's own config: ignoring --set %s", ", ".join(ignored))
    if config.train.init == "kinetics-i3d" and not args.resume:
        from centrifuge.kinetics import fetch_kinetics_i3d

        fetch_kinetics_i3d(status=status_line)  # once: a no-op when the cache has it
    bar = progress_bar(config.train.steps, "step", "train")

    def progress(info: dict) -> None:
        bar.total = info["steps"]
        bar.update(info["step"] - bar.n)
        shown = {"loss": f"{info['loss']:.4f}", "clips/s": f"{info['clips_per_s']:.1f}"}
        if "val_loss" in info:
            shown["val"] = (
                f"{info['val_written_loss']:.4f} written, {info['val_loss']:.4f} best 2"
                f"/{info['val_identity']:.4f}"
            )
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
            ident = summary["val_identity"]
            line += (
                f"  val loss: written {summary['val_written_loss']:.4f}"
                f" ({summary['val_written_loss'] / ident:.3f}x identity),"
                f" best 2 (oracle) {summary['val_loss']:.4f} ({summary['val_loss'] / ident:.3f}x)"
            )
        if summary["stopped_by"]:
            line += f"  stopped by {summary['stopped_by']}: continue with --resume"
        print(f"{line}\nrun folder: {args.out}")
    return 0


def add_train(sub) -> None:
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
    add_device(p)
    p.set_defaults(func=cmd_train)


def cmd_evaluate(args: argparse.Namespace) -> int:
    Progress().status(f"loading the model {args.model!r} ...")
    from centrifuge.evaluate import evaluate
    from centrifuge.pretrained import load_model, untrained_like
    from centrifuge.utils import pick_device

    device = pick_device(args.device)
    model = load_model(args.model, device=device)
    untrained = untrained_like(model, seed=args.seed) if args.untrained else None
    Progress().status("")
    bar = progress_bar(args.pairs, "pair", "evaluate")

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


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, PSNR and SSIM on fixed blends of a folder",
        description="Blend pairs of distinct videos of a folder 50/50 (the same blends for the "
        "same folder, seed, clip length and size on any machine), separate them and score the "
        "layers against the true ones, beside the identity baseline (the blend itself given "
        "back as every layer).",
    )
    p.add_argument("--data", required=True, metavar="DIR", help="folder of videos to blend")
    add_model_and_device(p)
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
    p.set_defaults(func=cmd_evaluate)


def cmd_reproduce(args: argparse.Namespace) -> int:
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


def add_reproduce(sub) -> None:
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
    add_device(p)
    p.set_defaults(func=cmd_reproduce)


REPRODUCE_TABLES = """\
tables (the paper's numbering):
  table1  identity vs untrained vs trained predictor
  table2  number of outputs: predictor with 2/4/8/12, predictor-corrector with 2/4
  table3  frozen (still) videos in training and testing
  table4  how deep the encoder goes: I3D to Mixed_3c, Mixed_4f, Mixed_5c
  fig4    colour-shifted layers (Figure 4)"""
