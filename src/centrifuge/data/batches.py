"""Training batches: a run's clip dataset, its stream of clip batches, and the blends of each step.

Clip ``i`` and the blend partners of step ``s`` come from RNGs seeded by ``(seed, rank, i)`` and
``(seed, rank, s)``: a run resumed from a checkpoint at step ``s`` sees exactly the data it would
have seen, and each rank sees different data. Step ``s`` reads clips
``s * P, ..., (s + 1) * P - 1`` with ``P`` = :func:`clips_per_step`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from centrifuge.config import Config, DataConfig
from centrifuge.data.augment import augment_clips
from centrifuge.data.bank import ClipBank
from centrifuge.data.blend import blend, freeze_clips, make_mixtures, mixture_weights
from centrifuge.data.folder import ClipSpec, RandomClips, StreamSampler, VideoFolder
from centrifuge.data.index import VideoEntry
from centrifuge.data.photos import Interleave, PhotoClips

__all__ = [
    "clip_batches",
    "clip_spec",
    "clips_per_step",
    "gather_batch",
    "mix_batch",
    "side_mixtures",
    "step_generator",
    "training_dataset",
]

SIDE_START = 1 << 40  # first clip index of side_mixtures, far from any training stream


def clip_spec(data: DataConfig) -> ClipSpec:
    """The clip geometry a data config asks for."""
    return ClipSpec(clip_len=data.clip_len, crop=data.crop, stride=data.stride, scale=data.scale)


def clips_per_step(config: Config) -> int:
    """Dataset items one step reads: ``K`` clips per mixture, or one grouped item per mixture."""
    dc = config.data
    return config.train.batch_size * (1 if dc.same_class else dc.n_layers)


def _bank_on_device(data: DataConfig, device: torch.device) -> bool:
    return data.bank and data.bank_on_device and device.type == "cuda"


def training_dataset(
    entries: list[VideoEntry], config: Config, *, rank: int, device: torch.device
) -> Dataset:
    """The random-clip dataset of a run: a clip bank (on ``device`` when asked) or direct decoding,
    grouped by class when ``data.same_class``, with photographs interleaved when asked."""
    dc, seed = config.data, config.train.seed
    spec = clip_spec(dc)
    if dc.bank:
        source = ClipBank.from_entries(entries, spec.short_side)
        if _bank_on_device(dc, device):
            source.to(device)
    else:
        source = VideoFolder(None, short_side=spec.short_side, entries=entries)
    group = dc.n_layers if dc.same_class else None
    ds = RandomClips(
        source, spec, seed=seed, rank=rank, frozen=dc.frozen, group=group, same_class=dc.same_class
    )
    if dc.photos and dc.photo_fraction > 0:
        photos = PhotoClips(dc.photos, spec, seed=seed, rank=rank)
        ds = Interleave(ds, photos, dc.photo_fraction, seed=seed + rank)
        if _bank_on_device(dc, device):
            photos.to(device)  # with the bank: every clip of a batch on one device
    return ds


def gather_batch(ds: Dataset, indices: range) -> torch.Tensor:
    """Items ``indices`` of ``ds`` stacked; clips from a clip bank on a GPU are cut with one
    gather. Shape: ``[len(indices), C, T, S, S]`` (``[len(indices), K, C, T, S, S]`` grouped)."""
    main = ds.main if isinstance(ds, Interleave) else ds
    out: list[torch.Tensor | None] = [None] * len(indices)
    draws = []
    for j, i in enumerate(indices):
        if isinstance(ds, Interleave) and ds.uses_extra(i):
            out[j] = ds.extra[i]
        elif (
            main.group is not None
            or not isinstance(main.source, ClipBank)
            or main.source.data.device.type == "cpu"
        ):  # on a CPU, slices beat one big gather
            out[j] = main[i]
        else:
            draws.append((j, main.draw(i)))
    if draws:
        slots, items = zip(*draws)
        videos, frames, tops, lefts, flips = zip(*items)
        clips = main.source.read_batch(
            list(videos), torch.stack(frames), list(tops), list(lefts), main.spec.crop, list(flips)
        )
        for j, clip in zip(slots, clips):
            out[j] = clip
    return torch.stack(out)


def clip_batches(
    ds: Dataset, config: Config, *, start_step: int, device: torch.device
) -> Iterator[torch.Tensor]:
    """Clip batches of ``ds`` for steps ``start_step, start_step + 1, ...`` (without end): cut in
    this process from a bank on the GPU or with ``data.workers == 0``, else by DataLoader workers.
    """
    per_step = clips_per_step(config)
    start = start_step * per_step
    workers = config.data.workers
    if _bank_on_device(config.data, device) or workers == 0:
        index = start
        while True:
            yield gather_batch(ds, range(index, index + per_step))
            index += per_step
    loader = DataLoader(
        ds,
        batch_size=per_step,
        sampler=StreamSampler(start),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=True,
        prefetch_factor=4,
    )
    yield from loader


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The RNG that draws the blend partners and weights of ``step`` on ``rank``."""
    state = np.random.SeedSequence([seed, rank, step, 1]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def mix_batch(
    clips: torch.Tensor, data: DataConfig, *, seed: int, rank: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blend a step's clips into mixtures, with partners and weights drawn for ``(seed, rank,
    step)``, after the per-clip augmentations of ``data``
    (:func:`~centrifuge.data.augment.augment_clips`); with ``data.one_frozen`` the first layer of
    a mixture is frozen with that probability.

    Args:
        clips: ``[B * K, C, T, H, W]`` independent clips, or ``[B, K, C, T, H, W]`` when
            ``data.same_class`` grouped them already.

    Returns:
        ``(layers [B, K, C, T, H, W], mixture [B, C, T, H, W], weights [B, K])``.
    """
    g = step_generator(seed, rank, step)
    if data.colour_jitter or data.reverse:
        shape = clips.shape
        flat = clips.reshape(-1, *shape[-4:])  # [B * K, C, T, H, W]
        flat = augment_clips(flat, colour=data.colour_jitter, reverse=data.reverse, generator=g)
        clips = flat.reshape(shape)
    alpha = data.alpha_range if data.alpha_range is not None else data.alpha
    if data.same_class:
        weights = mixture_weights(clips.shape[0], clips.shape[1], alpha, g).to(clips.device)
        return clips, blend(clips, weights), weights
    layers, mixture, weights = make_mixtures(clips, data.n_layers, alpha, g)
    if data.one_frozen > 0:
        which = torch.zeros(layers.shape[:2], dtype=torch.bool)  # [B, K]
        which[:, 0] = torch.rand(layers.shape[0], generator=g) < data.one_frozen
        flat = freeze_clips(layers.flatten(0, 1), g, which.flatten())  # [B * K, C, T, H, W]
        layers = flat.reshape(layers.shape)
        mixture = blend(layers, weights)
    return layers, mixture, weights


def side_mixtures(
    ds: Dataset, config: Config, *, rank: int, device: torch.device, count: int
) -> Iterator[torch.Tensor]:
    """``count`` batches of training mixtures ``[B, C, T, H, W]`` on ``device`` drawn from clips
    far from the training stream (index :data:`SIDE_START` on): a run that uses them (to
    re-estimate BatchNorm statistics) then sees the same batches as one that does not."""
    per_step = clips_per_step(config)
    for i in range(count):
        first = SIDE_START + i * per_step
        clips = gather_batch(ds, range(first, first + per_step)).to(device)
        seed = config.train.seed
        yield mix_batch(clips, config.data, seed=seed, rank=rank, step=SIDE_START + i)[1]
