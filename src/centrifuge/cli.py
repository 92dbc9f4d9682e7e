"""Command line: parsing and printing only; every command calls the library.

Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable

from centrifuge.errors import CentrifugeError

log = logging.getLogger("centrifuge")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _progress_bar(total: int, unit: str, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True, leave=False,
                disable=not sys.stderr.isatty() and os.environ.get("CENTRIFUGE_PROGRESS") != "1")


def _weights_arg(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"weights must be numbers separated by commas: {text!r}") from None


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

        out = blend_files(args.inputs, args.output, weights=weights, frames=args.frames,
                          size=args.size, overwrite=args.force, progress=progress)
    finally:
        bar.close()
    print(out)
    return 0


def _add_blend(sub) -> None:
    p = sub.add_parser("blend", help="blend two or more videos into one (the training mixtures)")
    p.add_argument("inputs", nargs="+", metavar="VIDEO")
    p.add_argument("-o", "--output", required=True, help="output .mp4")
    p.add_argument("--alpha", type=float, help="V = (1 - alpha) A + alpha B (two inputs)")
    p.add_argument("--weights", type=_weights_arg, help="W1,W2,... summing to 1")
    p.add_argument("--frames", type=int, help="keep at most this many frames")
    p.add_argument("--size", type=int, help="shortest side of the output in pixels")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_cmd_blend)


COMMANDS: list[Callable] = [_add_blend]


def build_parser() -> argparse.ArgumentParser:
    from centrifuge import __version__

    parser = _Parser(prog="centrifuge", description="Split videos into layers (The Visual Centrifuge).")
    parser.add_argument("--version", action="version", version=f"centrifuge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_ffmpeg()
    try:
        return int(args.func(args) or 0)
    except CentrifugeError as exc:
        print(f"centrifuge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"centrifuge {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # internal error: one line, the traceback on request
        if os.environ.get("CENTRIFUGE_DEBUG"):
            traceback.print_exc()
        print(f"centrifuge {args.command}: internal error: {exc.__class__.__name__}: {exc} "
              "(set CENTRIFUGE_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def _quiet_ffmpeg() -> None:
    import av.logging

    av.logging.set_level(None)


if __name__ == "__main__":
    sys.exit(main())
