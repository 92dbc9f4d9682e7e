"""Result folders of ``centrifuge separate``: their names and files, one run at a time per folder,
and all-or-nothing publication.

A result is built in a hidden work folder beside its final place and renamed into place last
(:func:`staged_result`), so ``OUTDIR/<name>/`` always holds a complete result or nothing, whatever
stops the run; ``--force`` swaps a whole earlier result with two renames. Leftovers of killed
runs are removed first. Nothing is written outside the output folder the user named.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from centrifuge.errors import CentrifugeError, OutputExistsError

__all__ = [
    "CONTACT_FILE",
    "PREVIEW_FILE",
    "REPORT_FILE",
    "in_result_folder",
    "is_result_folder",
    "layer_file",
    "output_error",
    "output_paths",
    "result_files",
    "result_folder",
    "result_name",
    "safe_name",
    "staged_result",
]

MAX_NAME_BYTES = 200  # result folder names (file systems allow 255, work names add a suffix)
# the files of a result (the one place their names are written; layers: layer_file)
PREVIEW_FILE, CONTACT_FILE, REPORT_FILE = "preview.mp4", "contact.png", "report.json"

_RESULT_FILE = re.compile(
    "|".join([r"layer_\d+\.(mp4|png)", *map(re.escape, (PREVIEW_FILE, CONTACT_FILE, REPORT_FILE))])
)
_WORK_SUFFIX = 8  # random characters tempfile.mkdtemp adds


def safe_name(stem: str) -> str:
    """The folder name for an input's results: never ``.``, ``..``, empty, hidden or holding a
    separator, at most :data:`MAX_NAME_BYTES` bytes, so that it always names a new entry inside the
    output folder (and never one of this program's hidden work files there)."""
    name = "".join("_" if c in "/\\" or ord(c) < 32 or c == "\x7f" else c for c in stem)
    if not name or name.startswith("."):
        name = f"_{name}"
    name = name[:MAX_NAME_BYTES]
    while len(os.fsencode(name)) > MAX_NAME_BYTES:  # cut whole characters, never half of one
        name = name[:-1]
    return name


def result_name(input_path: str | os.PathLike) -> str:
    """The name of an input's result folder: :func:`safe_name` of its stem."""
    return safe_name(Path(input_path).stem)


def result_folder(out_dir: str | os.PathLike, input_path: str | os.PathLike) -> Path:
    """``out_dir/<name>``, where the results of ``input_path`` go (:func:`result_name`)."""
    return Path(out_dir) / result_name(input_path)


def layer_file(index: int, still: bool = False) -> str:
    """The name of layer ``index`` (from 1): ``layer_<index>.mp4``, ``.png`` for a still image."""
    return f"layer_{index}{'.png' if still else '.mp4'}"


def output_paths(
    out_dir: str | os.PathLike, input_path: str | os.PathLike, n_layers: int, *, still: bool = False
) -> dict:
    """Every file ``separate`` writes for one input (:func:`result_files` in
    :func:`result_folder`). A still image gives PNG layers and no preview (``"preview": None``).
    """
    return result_files(result_folder(out_dir, input_path), n_layers, still)


def result_files(folder: Path, n_layers: int, still: bool = False) -> dict:
    """The files of a result in ``folder`` (the one builder of their names): ``folder``,
    ``layers`` (list), ``preview`` (``None`` for a still image), ``contact``, ``report``."""
    return {
        "folder": folder,
        "layers": [folder / layer_file(i + 1, still) for i in range(n_layers)],
        "preview": None if still else folder / PREVIEW_FILE,
        "contact": folder / CONTACT_FILE,
        "report": folder / REPORT_FILE,
    }


def is_result_folder(folder: Path) -> bool:
    """Whether ``folder`` is a result of ``separate``: a ``report.json`` and nothing but result
    files (the result of a video or of a still)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    return REPORT_FILE in names and all(_RESULT_FILE.fullmatch(name) for name in names)


def in_result_folder(path: Path, root: Path) -> bool:
    """Whether ``path``, found under the folder ``root``, lies in a result folder (``root``
    included): results are never inputs, so a second run with ``-o`` inside the input folder does
    not separate the layers of the first."""
    for folder in path.parents:
        if is_result_folder(folder):
            return True
        if folder == root:
            return False
    return False


def output_error(exc: OSError, where: Path) -> CentrifugeError:
    """One line naming the place that cannot be written and why (read-only, full disk...)."""
    cause = exc.strerror or str(exc) or exc.__class__.__name__
    return CentrifugeError(f"{where}: cannot write the results ({cause}).")


def _output_folder(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CentrifugeError(f"{out}: exists and is not a folder (-o needs a folder).") from None
    except OSError as exc:
        raise output_error(exc, out) from exc
    if not out.is_dir():
        raise CentrifugeError(f"{out}: not a folder (-o needs a folder).")
    return out


@contextlib.contextmanager
def result_lock(folder: Path) -> Iterator[None]:
    """Hold ``OUTDIR/.<name>.lock`` for the result folder ``OUTDIR/<name>``: one run at a time.

    The lock is the kernel's (``flock``): a killed run releases it. The file is removed when the run
    ends; a run that locked a file already removed tries again on the new one.

    Raises:
        CentrifugeError: another run holds it.
    """
    lock = folder.with_name(f".{folder.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CentrifugeError(
                f"{folder}: in use by another centrifuge run (try again when it ends)."
            ) from None
        with contextlib.suppress(FileNotFoundError):
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _clean_stale(folder: Path) -> None:
    """Remove what killed runs left for this result folder (call with its lock held): hidden work
    folders beside it, and temporary files of earlier versions inside it."""
    prefix = f".{folder.name}.work-"
    with os.scandir(folder.parent) as entries:
        stale = [
            e.path
            for e in entries
            if e.name.startswith(prefix) and len(e.name) == len(prefix) + _WORK_SUFFIX
        ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if folder.is_dir() and not folder.is_symlink():
        for entry in folder.iterdir():
            if entry.name.startswith(".work-") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.startswith(".") and ".partial" in entry.name:
                entry.unlink(missing_ok=True)


def _check_replaceable(folder: Path, force: bool) -> None:
    """Whether the results may go to ``folder``: absent, empty, or (with ``force``) a result folder.

    Raises:
        OutputExistsError: results are there and ``force`` is off, or ``folder`` holds anything
        else (``--force`` replaces results, never other files).
    """
    try:
        mode = folder.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise OutputExistsError(
            f"{folder} exists and is not a result folder: move it or choose another -o."
        )
    entries = sorted(os.listdir(folder))
    foreign = [name for name in entries if not _RESULT_FILE.fullmatch(name)]
    if foreign:
        raise OutputExistsError(
            f"{folder} holds {foreign[0]!r}, which is not a centrifuge result: "
            "move it or choose another -o."
        )
    if entries and not force:
        raise OutputExistsError(f"{folder / entries[0]} exists: pass --force to replace it.")


@contextlib.contextmanager
def staged_result(
    out_dir: str | os.PathLike, name: str, force: bool
) -> Iterator[tuple[Path, Path]]:
    """Build the result ``out_dir/<name>`` in a hidden work folder, yielded as ``(stage, work)``:
    write the result into ``stage``, scratch files into ``work``; when the block ends normally,
    ``stage`` is renamed into place (replacing an earlier result only with ``force``), else
    everything is removed and nothing appears.

    Raises:
        CentrifugeError: ``out_dir`` is not a usable folder, another run holds the result, the
        result exists (without ``force``), or writing fails (one line with the cause).
    """
    out = _output_folder(out_dir)
    folder = out / name
    try:
        with result_lock(folder):
            _clean_stale(folder)
            _check_replaceable(folder, force)
            work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.work-", dir=out))
            try:
                stage = work / "result"
                stage.mkdir()
                yield stage, work
                # two renames, so that ``folder`` always holds a complete result or nothing
                if os.path.lexists(folder):
                    os.rename(folder, work / "replaced")
                os.rename(stage, folder)
            finally:
                shutil.rmtree(work, ignore_errors=True)
    except OSError as exc:  # the input's errors are VideoErrors: this is the output side
        raise output_error(exc, folder) from exc
