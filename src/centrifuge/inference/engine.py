"""Running a model's forward pass fast for a few fixed input shapes: OpenVINO, torch.compile, eager.

``compile_model(model, shape)`` returns a :class:`Runner`, a callable
``[1, C, T, H, W] float32 -> [1, N, C, T, H, W] float32`` (on the CPU). Inputs are expected already
padded to the model's stride multiples (``Separator`` pads to (8, 32, 32)), so a video brings only
a few distinct shapes; the runner prepares one per shape and keeps the last :data:`MAX_SHAPES`.

Backends:

* ``openvino``: the model is exported once per input shape (``torch.export``), converted with
  ``openvino.convert_model`` and kept as OpenVINO IR (``.xml`` + ``.bin``, fp32 weights) in the
  user's cache folder, with the compiled CPU blob of each precision beside it, so a second run
  is ready in under a second (0.65 s measured for `small`) instead of tens of seconds. Entries
  are keyed by :func:`model_digest` (weights, architecture, model code, torch/OpenVINO/engine
  versions) and the input shape, written atomically with a manifest of SHA-256 sums
  (:mod:`~centrifuge.inference.cache_entries`: an entry that does not match its manifest or does
  not load is rebuilt; the least recently used beyond 16 are removed). Nothing is ever unpickled.
* ``compile``: ``torch.compile`` (inductor, weights frozen), one static graph per shape; needs a C++
  compiler and tens of seconds per shape, kept by inductor's own cache.
* ``torch``: eager PyTorch (channels-last on the CPU, bf16 autocast on CUDA): the reference, and the
  fallback when another backend is missing or fails (then ``Runner.notice`` says why, in one line).

``auto`` picks OpenVINO on the CPU and eager torch on a GPU, by the numbers of ``bench/engine.py``
(``bench/RESULTS.md``). Precision ``auto`` is bf16 only where the CPU computes bf16 natively
(AVX-512 BF16 or AMX; elsewhere OpenVINO computes f32 anyway and torch would emulate it) and
only for OpenVINO, or on CUDA; f32 elsewhere. The BatchNorm layers are folded
(:func:`~centrifuge.models.fuse.fold_batchnorm`, on a copy) before the model runs in torch or is
exported; a cached OpenVINO model skips that.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import os
import re
import sys
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch

from centrifuge import defaults
from centrifuge.inference.cache_entries import load_entry, save_entry
from centrifuge.models.fuse import fold_batchnorm
from centrifuge.utils import cache_dir

__all__ = [
    "BACKENDS",
    "ENGINE_VERSION",
    "MAX_SHAPES",
    "PRECISIONS",
    "Runner",
    "compile_model",
    "cpu_has_native_bf16",
    "model_digest",
]

log = logging.getLogger(__name__)

ENGINE_VERSION = 1  # bump when what is exported or cached changes
BACKENDS = defaults.BACKENDS  # ("auto", "openvino", "compile", "torch")
PRECISIONS = ("auto", "f32", "bf16")
MAX_SHAPES = 4  # prepared shapes kept per runner (a video needs one or two, tiles a few more)
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


def _resolve_precision(precision: str, device: torch.device, backend: str) -> tuple[str, str]:
    """``(precision, notice)``: ``auto`` -> bf16 only where it is native (and measured to pay)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cuda":
        if precision == "auto":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "f32"
        return precision, ""
    native = cpu_has_native_bf16()
    if precision == "auto":
        return ("bf16" if native and backend == "openvino" else "f32"), ""
    if precision == "bf16" and not native:
        return "f32", "this CPU has no native bf16: running f32"
    return precision, ""


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


# -- backends: build(shape) -> forward ------------------------------------------------------------
class _Torch:
    """Eager PyTorch: channels-last on the CPU, bf16 autocast where asked."""

    name = "torch"

    def __init__(self, model: torch.nn.Module, precision: str, device: torch.device) -> None:
        self.model = model.to(memory_format=torch.channels_last_3d)
        self.device, self.precision = device, precision

    def build(self, shape: Shape) -> Forward:
        def forward(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last_3d)
            with (
                torch.inference_mode(),
                torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
                ),
            ):
                return self.model(x).float().cpu()

        return forward


class _Compile(_Torch):
    """``torch.compile`` with frozen weights and static shapes (one graph per shape)."""

    name = "compile"

    def __init__(self, model: torch.nn.Module, precision: str, device: torch.device) -> None:
        super().__init__(model, precision, device)
        self.model = torch.compile(self.model, dynamic=False, options={"freezing": True})

    def build(self, shape: Shape) -> Forward:
        forward = super().build(shape)
        forward(torch.zeros(shape))  # compile now: a missing C++ compiler fails here, not later
        return forward


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


class _OpenVINO:
    """OpenVINO on the CPU, IR and compiled blobs cached per model, shape and precision."""

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
        request = self._compiled(shape).create_infer_request()

        def forward(x: torch.Tensor) -> torch.Tensor:
            data = x.detach().to("cpu", torch.float32).contiguous().numpy()
            return torch.from_numpy(request.infer({0: data}, share_inputs=True)[0])

        return forward


# -- the runner -----------------------------------------------------------------------------------
class Runner:
    """A model's forward pass, prepared per input shape by one backend.

    Call it with ``[1, C, T, H, W]`` float32 in ``[0, 1]`` (any device; a shape it has not seen is
    prepared first, which may take seconds) to get ``[1, N, C, T, H, W]`` float32 on the CPU.

    Attributes:
        backend: the backend that runs: ``openvino``, ``compile`` or ``torch``.
        precision: ``f32`` or ``bf16``.
        notice: one line saying why the asked (or automatic) choice was not used; ``""`` if it was.
    """

    def __init__(self, backend, fallback: Callable[[], _Torch], notice: str = "") -> None:
        self._backend, self._fallback = backend, fallback
        self._forwards: OrderedDict[Shape, Forward] = OrderedDict()
        self.notice = notice

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def precision(self) -> str:
        return self._backend.precision

    @property
    def shapes(self) -> list[Shape]:
        """The prepared input shapes, least recently used first."""
        return list(self._forwards)

    def prepare(self, shape: Shape) -> None:
        """Export/compile for ``shape`` now (on failure: fall back to eager torch with a notice)."""
        shape = tuple(int(s) for s in shape)
        if shape in self._forwards:
            self._forwards.move_to_end(shape)
            return
        try:
            forward = self._backend.build(shape)
        except Exception as exc:
            if self._backend.name == "torch":
                raise
            failed = _notice(self._backend.name, exc)
            log.warning("%s", failed)
            self.notice = "; ".join(filter(None, [self.notice, failed]))
            self._backend = self._fallback()
            self._forwards.clear()
            forward = self._backend.build(shape)
        self._forwards[shape] = forward
        while len(self._forwards) > MAX_SHAPES:
            self._forwards.popitem(last=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: ``[1, C, T, H, W]`` -> ``[1, N, C, T, H, W]``, float32 on the CPU."""
        shape = tuple(x.shape)
        self.prepare(shape)
        return self._forwards[shape](x)


def _notice(backend: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    first = re.sub(r"\s+", " ", first)[:160]
    return f"{backend} failed ({type(exc).__name__}: {first}): running eager torch"


def compile_model(
    model: torch.nn.Module,
    shape: Shape | None = None,
    *,
    backend: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Runner:
    """A fast :class:`Runner` of ``model`` (a :class:`~centrifuge.models.CentrifugeNet`).

    Args:
        model: the model, on the device it should run on (BatchNorm is folded into a copy).
        shape: ``(1, C, T, H, W)`` to prepare now (export/compile), so that the start-up cost and
            any fallback happen here; other shapes are prepared on first use.
        backend: ``auto``, ``openvino``, ``compile`` or ``torch`` (see the module docstring).
        precision: ``auto``, ``f32`` or ``bf16`` (bf16 on a CPU without native bf16 runs f32).
        threads: OpenVINO's inference threads (default: ``torch.get_num_threads()``); the torch
            backends use torch's own setting.
        cache_dir: where exported models are kept (default: the user's cache folder,
            ``<cache>/engine``).

    Returns:
        A :class:`Runner`; ``runner.notice`` is one line when it fell back to eager torch.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = next(model.parameters()).device
    # folded (a copy, in eval mode) only when it runs here: a cached OpenVINO model does not
    # need it, and it takes about half of a warm start-up (0.7 s for `small` on 2 loaded cores)
    folded = functools.cache(lambda: fold_batchnorm(model))
    if backend == "auto":
        backend = "openvino" if device.type == "cpu" else "torch"
    precision, notice = _resolve_precision(precision, device, backend)
    eager_precision = "f32" if device.type == "cpu" and backend == "openvino" else precision

    def eager() -> _Torch:
        return _Torch(folded(), eager_precision, device)

    chosen: object
    if backend == "torch":
        chosen = eager()
    elif device.type != "cpu":
        chosen = eager()
        notice = f"{backend} runs on the CPU only, the model is on {device}: running eager torch"
    else:
        try:
            if backend == "compile":
                chosen = _Compile(folded(), precision, device)
            else:
                folder = _cache_folder(cache_dir)
                threads = threads or torch.get_num_threads()
                chosen = _OpenVINO(model, folded, precision, threads, folder)
        except ImportError as exc:
            chosen = eager()
            missing = f"{backend} is not available ({exc.name or exc}): running eager torch"
            notice = "; ".join(filter(None, [notice, missing]))
        except Exception as exc:
            chosen = eager()
            notice = "; ".join(filter(None, [notice, _notice(backend, exc)]))
    runner = Runner(chosen, eager, notice)
    if notice:
        log.warning("%s", notice)
    if shape is not None:
        runner.prepare(shape)
    return runner


def _cache_folder(folder: str | os.PathLike | None) -> Path | None:
    """``folder`` (default ``<cache>/engine``), created; ``None`` (no cache) where it cannot be."""
    try:
        if folder is None:
            return cache_dir("engine")
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    except OSError as exc:
        log.warning("no cache folder for exported models (%s): exporting every run", exc)
        return None
