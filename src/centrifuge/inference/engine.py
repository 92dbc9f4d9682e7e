"""Running a model's forward pass fast for a few fixed input shapes: the one place a model runs.

``compile_model(model, shape, device=...)`` returns a :class:`Runner`, a callable
``[1, C, T, H, W] float32 -> [1, N, C, T, H, W] float32`` (on the CPU). A video brings only a few
distinct shapes (``Separator`` runs every window at the video's processing size, padded in time to
a multiple of 8); the runner prepares one per shape and keeps the last :data:`MAX_SHAPES`.

Backends (:data:`BACKENDS`):

* ``openvino`` (CPU): exported once per input shape and cached, see
  :mod:`~centrifuge.inference.openvino`;
* ``compile`` (CPU): ``torch.compile`` (inductor, weights frozen), one static graph per shape;
  needs a C++ compiler and tens of seconds per shape, kept by inductor's own cache;
* ``torch``: eager PyTorch, channels-last, on any device (bf16 autocast where the precision says
  so: by default on CUDA): the reference, and the fallback when another backend is missing or
  fails (then ``Runner.notice`` says why, in one line).

``auto`` picks OpenVINO on the CPU and eager torch on a GPU, by the numbers of ``bench/engine.py``
(``bench/RESULTS.md``). Precision ``auto`` is bf16 only where the CPU computes bf16 natively
(AVX-512 BF16 or AMX; elsewhere OpenVINO computes f32 anyway and torch would emulate it) and
only for OpenVINO, or on CUDA; f32 elsewhere. The BatchNorm layers are folded
(:func:`~centrifuge.models.fuse.fold_batchnorm`, on a copy) before the model runs in torch or is
exported; a cached OpenVINO model skips that.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Callable

import torch

from centrifuge import defaults
from centrifuge.inference.openvino import OpenVINOBackend, cache_folder, cpu_has_native_bf16
from centrifuge.models.fuse import fold_batchnorm

__all__ = ["BACKENDS", "MAX_SHAPES", "PRECISIONS", "Runner", "compile_model"]

log = logging.getLogger(__name__)

BACKENDS = defaults.BACKENDS  # ("auto", "openvino", "compile", "torch")
PRECISIONS = ("auto", "f32", "bf16")
MAX_SHAPES = 4  # prepared shapes kept per runner (a video needs one or two, tiles a few more)

Shape = tuple[int, ...]
Forward = Callable[[torch.Tensor], torch.Tensor]


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


# -- backends: build(shape) -> forward ------------------------------------------------------------
class _Torch:
    """Eager PyTorch on ``device``: channels-last, bf16 autocast where asked."""

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


def _model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters are (the CPU for a model without any)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def compile_model(
    model: torch.nn.Module,
    shape: Shape | None = None,
    *,
    backend: str = "auto",
    precision: str = "auto",
    device: torch.device | str | None = None,
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Runner:
    """A fast :class:`Runner` of ``model`` (a :class:`~centrifuge.models.CentrifugeNet`).

    Args:
        model: the model (BatchNorm is folded into a copy, which is moved to ``device``).
        shape: ``(1, C, T, H, W)`` to prepare now (export/compile), so that the start-up cost and
            any fallback happen here; other shapes are prepared on first use.
        backend: ``auto``, ``openvino``, ``compile`` or ``torch`` (see the module docstring).
        precision: ``auto``, ``f32`` or ``bf16`` (bf16 on a CPU without native bf16 runs f32).
        device: where the model runs (default: where its parameters are).
        threads: OpenVINO's inference threads (default: ``torch.get_num_threads()``); the torch
            backends use torch's own setting.
        cache_dir: where exported models are kept (default: the user's cache folder,
            ``<cache>/engine``).

    Returns:
        A :class:`Runner`; ``runner.notice`` is one line when it fell back to eager torch.

    Raises:
        ValueError: an unknown backend or precision.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    device = _model_device(model) if device is None else torch.device(device)
    # folded (a copy, in eval mode) only when it runs here: a cached OpenVINO model does not
    # need it, and it takes about half of a warm start-up (0.7 s for `small` on 2 loaded cores)
    folded = functools.cache(lambda: fold_batchnorm(model).to(device))
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
                folder = cache_folder(cache_dir)
                threads = threads or torch.get_num_threads()
                chosen = OpenVINOBackend(model, folded, precision, threads, folder)
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
