"""The OpenVINO backend of :mod:`~centrifuge.inference.engine`: export, IR and blob cache, the
model's digest and the CPU's bf16 probe.

The model is exported once per input shape (``torch.export``), converted with
``openvino.convert_model`` and kept as OpenVINO IR (``.xml`` + ``.bin``, fp32 weights) in the
user's cache folder, with the compiled CPU blob of each precision beside it, so a second run is
ready in under a second (0.65 s measured for `small`) instead of tens of seconds. Entries are
keyed by :func:`model_digest` (weights, architecture, model code, torch/OpenVINO/engine versions)
and the input shape, written atomically with a manifest of SHA-256 sums
(:mod:`~centrifuge.inference.cache_entries`: an entry that does not match its manifest or does not
load is rebuilt; the least recently used beyond 16 are removed). Nothing is ever unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from centrifuge.inference.cache_entries import load_entry, save_entry
from centrifuge.models.fuse import fold_batchnorm
from centrifuge.utils import cache_dir

__all__ = [
    "BF16_CPU_FLAGS",
    "ENGINE_VERSION",
    "OpenVINOBackend",
    "cache_folder",
    "cpu_has_native_bf16",
    "model_digest",
]

log = logging.getLogger(__name__)

ENGINE_VERSION = 1  # bump when what is exported or cached changes
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic

Shape = tuple[int, ...]
Forward = Callable[[torch.Tensor], torch.Tensor]


# -- the machine --------------------------------------------------------------------------------
def _cpu_flags() -> set[str] | None:
    """The x86 feature flags of /proc/cpuinfo; ``None`` where there is no such file or line."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX). Read from /proc/cpuinfo on
    Linux, else from OpenVINO's CPU capabilities; ``False`` when neither can tell."""
    flags = _cpu_flags()
    if flags is not None:
        return any(flag in flags for flag in BF16_CPU_FLAGS)
    try:
        import openvino as ov

        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no OpenVINO, or no CPU device: no evidence of bf16
        return False


# -- identity of a model --------------------------------------------------------------------------
def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of everything that decides what a traced model computes: the weights and buffers
    (names, dtypes, shapes, bytes), each submodule's class and public settings, the source files
    of the model's own (non-torch) classes and of the BatchNorm folding, and the torch, OpenVINO
    and engine versions."""
    h = hashlib.sha256()
    h.update(f"engine {ENGINE_VERSION}; torch {torch.__version__}; ov {_ov_version()}\n".encode())
    sources = {inspect.getsourcefile(fold_batchnorm) or ""}
    for name, module in model.named_modules():
        settings = sorted(
            (k, repr(v))
            for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str))
        )
        h.update(f"{name}:{type(module).__qualname__}:{settings}\n".encode())
        if not type(module).__module__.startswith("torch"):
            with contextlib.suppress(TypeError, OSError):
                sources.add(inspect.getsourcefile(type(module)) or "")
    for path in sorted(s for s in sources if s):
        with contextlib.suppress(OSError):
            h.update(Path(path).read_bytes())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _ov_version() -> str:
    try:
        import openvino as ov
    except ImportError:
        return "none"
    return ov.__version__.split("-")[0]


# -- export ---------------------------------------------------------------------------------------
def _without_telemetry() -> None:
    """OpenVINO's converter reports usage to Google Analytics and writes ``~/intel`` when its
    telemetry package can be imported: a library must neither phone home nor write outside the
    folders it was given. Blocking that import (a ``None`` entry in ``sys.modules``) makes the
    converter use the no-op stub OpenVINO ships for builds without telemetry."""
    sys.modules.setdefault("openvino_telemetry", None)


_without_telemetry()  # before anything here imports openvino


def _export_openvino(model: torch.nn.Module, shape: Shape):
    """Export ``model`` for inputs of exactly ``shape`` and convert it: an ``openvino.Model``.

    ``torch.export`` traces with fake tensors (no forward pass is computed); the model's padding,
    computed from Python ints, is specialised to this shape, the only one this graph is given.
    """
    import openvino as ov

    with torch.no_grad(), warnings.catch_warnings():
        # torch's export and OpenVINO's converter warn about their own internals, not ours
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        program = torch.export.export(model, (torch.zeros(shape),))
        converted = ov.convert_model(program)
    converted.reshape(list(shape))  # the converter leaves the batch and time dimensions open
    return converted


# -- the backend: build(shape) -> forward ---------------------------------------------------------
class OpenVINOBackend:
    """OpenVINO on the CPU, IR and compiled blobs cached per model, shape and precision.

    Args:
        model: the model on the CPU (only its digest is taken here).
        folded: returns the model with BatchNorm folded, to export (called only on a cache miss).
        precision: ``f32`` or ``bf16``.
        threads: OpenVINO's inference threads.
        folder: the cache folder (``None``: no cache, export every time).
    """

    name = "openvino"

    def __init__(
        self,
        model: torch.nn.Module,
        folded: Callable[[], torch.nn.Module],
        precision: str,
        threads: int,
        folder: Path | None,
    ) -> None:
        import openvino as ov

        self.ov, self.core, self.folded, self.folder = ov, ov.Core(), folded, folder
        self.precision = precision
        self.config = {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        self.digest = model_digest(model)
        device = self.core.get_property("CPU", "FULL_DEVICE_NAME")
        self.cpu_key = hashlib.sha256(f"{device} threads={threads}".encode()).hexdigest()[:12]

    def _stem(self, shape: Shape) -> str:
        return f"{self.digest[:24]}-{'x'.join(map(str, shape))}"

    def _ir(self, shape: Shape):
        """The model for ``shape``: from the cache, else exported (and cached)."""
        stem = self._stem(shape)
        files = None if self.folder is None else load_entry(self.folder, stem, (".xml", ".bin"))
        if files is not None:
            try:
                return self.core.read_model(files[".xml"], files[".bin"])
            except Exception as exc:  # verified bytes that this OpenVINO cannot read
                log.info("engine cache entry %s does not load (%s): rebuilding it", stem, exc)
        log.info("exporting the model to OpenVINO for input %s", list(shape))
        ov_model = _export_openvino(self.folded(), shape)
        if self.folder is not None:
            try:
                with tempfile.TemporaryDirectory(dir=self.folder, prefix=".export-") as tmp:
                    self.ov.save_model(ov_model, Path(tmp) / "model.xml", compress_to_fp16=False)
                    files = {s: (Path(tmp) / f"model{s}").read_bytes() for s in (".xml", ".bin")}
            except OSError as exc:
                log.warning("engine cache %s not written: %s", self.folder, exc)
            else:
                save_entry(self.folder, stem, files)
        return ov_model

    def _compiled(self, shape: Shape):
        stem = f"{self._stem(shape)}-{self.precision}-{self.cpu_key}"
        if self.folder is not None:
            files = load_entry(self.folder, stem, (".blob",))
            if files is not None:
                try:
                    return self.core.import_model(files[".blob"], "CPU", self.config)
                except Exception as exc:
                    log.info("engine cache entry %s does not load (%s): rebuilding it", stem, exc)
        compiled = self.core.compile_model(self._ir(shape), "CPU", self.config)
        if self.folder is not None:
            blob = compiled.export_model()  # BytesIO (bytes in older OpenVINO)
            save_entry(self.folder, stem, {".blob": getattr(blob, "getvalue", lambda: blob)()})
        return compiled

    def build(self, shape: Shape) -> Forward:
        """The forward pass for inputs of exactly ``shape``: ``[1, C, T, H, W]`` float32 ->
        ``[1, N, C, T, H, W]`` float32 on the CPU."""
        request = self._compiled(shape).create_infer_request()

        def forward(x: torch.Tensor) -> torch.Tensor:
            data = x.detach().to("cpu", torch.float32).contiguous().numpy()
            return torch.from_numpy(request.infer({0: data}, share_inputs=True)[0])

        return forward


def cache_folder(folder: str | os.PathLike | None) -> Path | None:
    """``folder`` (default ``<cache>/engine``), created; ``None`` (no cache) where it cannot be."""
    try:
        if folder is None:
            return cache_dir("engine")
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    except OSError as exc:
        log.warning("no cache folder for exported models (%s): exporting every run", exc)
        return None
