"""What every command shares: the parser that fails in one line, help showing defaults, common
options, and what a long command shows on stderr (a status line, then progress bars)."""

from __future__ import annotations

import argparse
import os
import sys
import threading

from centrifuge import defaults


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
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


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def progress_enabled() -> bool:
    return sys.stderr.isatty() or os.environ.get("CENTRIFUGE_PROGRESS") == "1"


def progress_bar(total: int | None, unit: str, desc: str, **kwargs):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        dynamic_ncols=True,
        leave=False,
        disable=not progress_enabled(),
        **kwargs,
    )


class Progress:
    """What a long command shows on stderr: a status line from the start ("loading model ..."),
    then one bar per input with an estimate from the average rate so far. Only on a terminal (or
    with CENTRIFUGE_PROGRESS=1); pipes and logs get the result lines alone."""

    TICK_S = 1.0  # a waiting bar is redrawn this often, so its clock keeps running

    def __init__(self, unit: str = "frame") -> None:
        self.enabled = progress_enabled()
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
                bar = self.bars[key] = progress_bar(total, self.unit, name, smoothing=0)
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


def size_arg(text: str) -> defaults.Size:
    """``--size``: the values of :func:`centrifuge.defaults.parse_size`."""
    try:
        return defaults.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--{exc}") from None


def add_backend(p: argparse.ArgumentParser) -> None:
    """``--backend``, by default ``$CENTRIFUGE_BACKEND`` (read here, never by the library)."""
    p.add_argument(
        "--backend",
        choices=defaults.BACKENDS,
        default=os.environ.get(defaults.BACKEND_ENV, defaults.BACKEND),
        help="how the model runs: auto picks the fastest correct engine here (OpenVINO on a "
        f"CPU, PyTorch on a GPU); torch is plain PyTorch (${defaults.BACKEND_ENV} sets the "
        "default)",
    )


def add_model_and_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-n",
        "--model",
        default="small",
        metavar="NAME|PATH",
        help="registered model (tiny, small, paper) or a .safetensors / checkpoint file",
    )
    add_device(p)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-d",
        "--device",
        default="auto",
        metavar="auto|cpu|cuda",
        help="where the model runs; auto: CUDA when present, else CPU",
    )


def status_line(text: str) -> None:
    print(f"centrifuge: {text}...", file=sys.stderr, flush=True)
