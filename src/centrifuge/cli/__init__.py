"""Command line: parsing and printing only; every command calls the library.

One module per group of commands (:mod:`~centrifuge.cli.separate`, :mod:`~centrifuge.cli.train`,
:mod:`~centrifuge.cli.tools`); nothing heavy (torch, NumPy, PyAV) is imported before a command runs.
Exit codes: 0 success, 2 bad input or usage (one line on stderr), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable

from centrifuge.cli import separate, tools, train
from centrifuge.cli.common import Parser
from centrifuge.errors import CentrifugeError
from centrifuge.version import __version__

__all__ = ["build_parser", "main"]

COMMANDS: list[Callable] = [
    separate.add_separate,
    tools.add_blend,
    train.add_train,
    train.add_evaluate,
    train.add_reproduce,
    tools.add_demo,
    tools.add_models,
    tools.add_weights,
    tools.add_serve,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="centrifuge", description="Split videos into layers (The Visual Centrifuge)."
    )
    parser.add_argument("--version", action="version", version=f"centrifuge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
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
