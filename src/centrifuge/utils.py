"""Small shared helpers: cache folder, atomic files, memory, device choice, the CPU allocator.

torch is imported inside the function that uses it: the command line imports this module before
it knows whether the command needs torch at all.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from centrifuge.errors import CentrifugeError

if TYPE_CHECKING:
    import torch


def cache_dir(*parts: str) -> Path:
    """The user's cache folder for centrifuge (``$CENTRIFUGE_CACHE``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``centrifuge``), created on demand. Never beside the data."""
    root = os.environ.get("CENTRIFUGE_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "centrifuge"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Give a finished temporary file normal permissions and rename it into place (atomic)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, final)
    return Path(final)


@contextlib.contextmanager
def atomic_path(
    final: str | os.PathLike, *, suffix: str = ".partial", durable: bool = False
) -> Iterator[Path]:
    """A unique hidden temporary path beside ``final``, published to ``final`` if the block ends
    without error and removed otherwise: readers see the old file or the whole new one, and two
    writers never share a temporary file. The one way this package publishes a file.

    ``durable``: flush the file to disk before it replaces ``final`` (a checkpoint must not be
    lost to a power cut after the previous one is gone).

    Example: ``with atomic_path(out) as tmp: tmp.write_text(text)``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{final.name[:100]}.", suffix=suffix, dir=final.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        publish(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def available_memory() -> int | None:
    """Bytes of memory this process can still take: the system's available memory, or the room
    left under a cgroup (container) limit when that is smaller; ``None`` when unknown."""
    found: list[int] = []
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
        found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(max(0, int(limit) - int(used)))
    return min(found) if found else None


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CentrifugeError("--device cuda was asked for but no CUDA device is available.")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise CentrifugeError(f"unknown device {name!r}: use auto, cpu or cuda.") from exc


# Larger buffers are mapped afresh at each call: a higher threshold runs the model faster but lets
# the heap fragment over long videos, so 64 MiB bounds memory (measurements: bench/RESULTS.md).
MMAP_THRESHOLD = 64 << 20


def tune_cpu_allocator() -> bool:
    """Keep large CPU tensors on the glibc heap instead of fresh ``mmap`` pages.

    PyTorch frees and re-allocates the activations of a 3D ConvNet at every call; with glibc's
    defaults each of those buffers is a new ``mmap`` whose pages fault in again (measured: a third
    of the CPU time spent in the kernel for `small` on 2 cores). Buffers up to
    :data:`MMAP_THRESHOLD` are kept on the heap, which is never trimmed, and all threads share one
    heap (one arena), so that peak memory does not grow with the length of a video. Called by the
    command line once at start-up; a no-op where glibc is not the allocator. Returns whether it
    applied.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not name.startswith("libc.so"):
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
        return bool(
            libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
            and libc.mallopt(m_trim_threshold, (1 << 31) - 1)
            and libc.mallopt(m_arena_max, 1)
        )
    except (OSError, AttributeError):
        return False
