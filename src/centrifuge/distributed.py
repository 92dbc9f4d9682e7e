"""Several processes under ``torchrun``: who this process is, its device, and what ranks agree on
(including when to stop: :class:`StopSignals` records a request that :func:`any_rank` shares).

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function is the one-process case: rank 0 of
1, no process group, and the collectives below return their input. Under ``torchrun`` the process
group is initialised once (NCCL with CUDA, else gloo), and every collective must be called by every
rank at the same point of the program.
"""

from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

__all__ = [
    "RankInfo",
    "StopSignals",
    "any_rank",
    "barrier",
    "data_parallel",
    "distributed_share",
    "gather_strings",
    "init_distributed",
    "min_over_ranks",
    "place_process",
    "sync_buffers",
    "weights_digest",
]

DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class RankInfo:
    """This process among those ``torchrun`` started: ``rank`` of ``world``, and ``local_rank`` of
    the ``local_world`` processes on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0


def init_distributed() -> RankInfo:
    """This process's :class:`RankInfo`, initialising the process group under ``torchrun``."""
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return RankInfo(local_world=local_world)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return RankInfo(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world=local_world,
    )


def place_process(device: DeviceName, threads: int | None, info: RankInfo) -> torch.device:
    """The device of this process (its own GPU under ``torchrun``) and its torch threads.

    Processes of one CPU machine share its cores: ``threads`` (else torch's default) is split
    between them, as more OpenMP threads than cores stall. On CUDA, cuDNN picks the fastest kernels
    for the fixed clip shapes.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    placed = torch.device(f"cuda:{info.local_rank}" if device == "cuda" else device)
    if placed.type == "cpu" and info.local_world > 1:
        threads = max(1, (threads or torch.get_num_threads()) // info.local_world)
    if threads:
        torch.set_num_threads(threads)
    if placed.type == "cuda":
        torch.cuda.set_device(placed)
        torch.backends.cudnn.benchmark = True
    return placed


def data_parallel(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when ``world > 1`` (gradients averaged over the
    ranks at each backward), else ``model`` itself."""
    if world <= 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def distributed_share(items: list, device: torch.device) -> tuple[list, torch.device]:
    """Under ``torchrun``: this rank's share of ``items`` (round robin) and its own GPU.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1): all items and ``device`` unchanged.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return items, device
    rank = int(os.environ.get("RANK", "0"))
    if device.type == "cuda":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return items[rank::world], device


def any_rank(flag: bool, device: torch.device, world: int) -> bool:
    """Whether ``flag`` is set on any rank (an all-reduce when ``world > 1``)."""
    if world <= 1:
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def barrier(world: int) -> None:
    """Wait until every rank gets here (nothing to wait for when ``world == 1``)."""
    if world > 1:
        dist.barrier()


def min_over_ranks(value: int, device: torch.device, world: int) -> int:
    """The smallest ``value`` over the ranks (an all-reduce when ``world > 1``)."""
    if world <= 1:
        return value
    tensor = torch.tensor([value], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())


def sync_buffers(model: torch.nn.Module, world: int) -> None:
    """Give every rank the buffers (BatchNorm statistics) of rank 0, as DDP does before each
    forward: the last forward updated each rank's copy from its own batch."""
    if world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def gather_strings(value: str, world: int) -> list[str]:
    """``value`` of every rank, in rank order (``[value]`` when ``world == 1``)."""
    if world <= 1:
        return [value]
    values: list[str] = [""] * world
    dist.all_gather_object(values, value)
    return values


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-1 of the model's parameters and buffers (by name): equal digests, equal weights."""
    h = hashlib.sha1()
    for _, tensor in sorted(model.state_dict().items()):
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class StopSignals:
    """In a ``with`` block, SIGINT and SIGTERM are recorded instead of ending the process: ``name``
    is the last one received (``"SIGTERM"``), else ``None``. The previous handlers come back at
    the end of the block."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.name: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        self._previous = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _record(self, signum: int, frame) -> None:
        self.name = signal.Signals(signum).name
