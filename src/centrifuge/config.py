"""Training configuration: frozen dataclasses, YAML files and ``--set key=value`` overrides.

A config is ``Config(data=DataConfig, model=ModelConfig, train=TrainConfig)``. Named configs
(``tiny``, ``small``, ``paper``) are YAML files shipped in ``centrifuge/configs``; any other YAML
file path works too. Every key of a file or an override is checked against the dataclass fields: an
unknown key is a :class:`ConfigError`, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from centrifuge.errors import ConfigError

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "apply_overrides", "load_config"]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4`` as a float, as YAML 1.2 does (PyYAML follows
    YAML 1.1, where only ``1.0e-4`` is a float and ``1e-4`` is a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class DataConfig:
    """Clips and mixtures (paper Sec. 3.1 and 4)."""

    clip_len: int = 32  # frames per clip
    crop: int = 112  # spatial crop (square)
    stride: int = 1  # temporal stride between sampled frames
    scale: float = 1.15  # shortest side is resized to scale * crop before cropping
    n_layers: int = 2  # K videos per mixture
    alpha: float = 0.5  # blend weight of the second video (K = 2)
    alpha_range: tuple[float, float] | None = None  # draw alpha ~ U[lo, hi] instead
    frozen: bool = False  # train on frozen clips (Table 3)
    one_frozen: float = 0.0  # probability that the first layer of a mixture is frozen
    same_class: bool = False  # blend videos of the same label only
    bank: bool = True  # decode the dataset once into a clip bank
    bank_on_device: bool = False  # hold the bank in GPU memory and cut clips there
    workers: int = 2  # DataLoader worker processes (CPU banks and direct decoding)
    photos: str | None = None  # folder of photographs animated into extra clips
    photo_fraction: float = 0.0  # fraction of clips drawn from ``photos``
    colour_jitter: float = 0.0  # per-clip gamma and channel-gain jitter (data/augment.py)
    reverse: float = 0.0  # probability that a clip plays backwards


@dataclass(frozen=True)
class ModelConfig:
    """A registered model and overrides of its :class:`CentrifugeNet` arguments (None = keep)."""

    name: str = "tiny"
    n_outputs: int | None = None
    final_endpoint: str | None = None
    width: float | None = None
    decoder_channels: tuple[int, ...] | None = None
    light_stages: int | None = None
    residual: bool | None = None
    corrector: bool | None = None
    corrector_sees_mixture: bool | None = None
    bn_momentum: float | None = None
    prior_scale: float | None = None

    def overrides(self) -> dict[str, Any]:
        """The non-None architecture fields, as keyword arguments for ``build_model``."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "name" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, logging and checkpointing."""

    steps: int = 200
    max_minutes: float | None = None  # shorten ``steps`` to end within this wall time
    batch_size: int = 8  # mixtures per step and process
    optimizer: str = "adamw"  # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.9  # SGD momentum (Adam beta1)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | step | constant
    milestones: tuple[int, ...] = ()  # step schedule: steps where the lr changes...
    milestone_lrs: tuple[float, ...] = ()  # ...to these values
    warmup_steps: int = 0
    grad_clip: float | None = None
    recompose_weight: float = 0.0  # Eq. 4 term
    diversity_weight: float = 0.0  # -l(Oi, Oj) term
    written_weight: float = 0.0  # loss of the layers separate writes (the cluster means)
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast on CUDA)
    channels_last: bool = False
    compile: bool = False
    log_every: int = 10
    val_every: int = 100
    val_pairs: int = 16
    val_seed: int = 0
    sample_every: int = 200
    ckpt_every: int = 200
    ckpt_minutes: float = 10.0
    keep_last: int = 3
    threads: int | None = None  # torch threads per machine (None = torch default); split between
    # the processes torchrun starts on one CPU machine
    init: str | None = None  # weights to start from: a registered name, .safetensors, .pt or
    # "kinetics-i3d" (encoders from the Kinetics-400 I3D, BatchNorm re-estimated, see bn_batches)
    bn_batches: int = 16  # batches of training blends that re-estimate BatchNorm after a
    # kinetics-i3d init (0: keep Kinetics' statistics)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check a YAML value against a field type (``int``, ``float | None``, ``tuple[int, ...]``)."""
    args = get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    elif value is None:
        raise ConfigError(f"{key} cannot be null.")
    if get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}.")
        return tuple(_coerce(v, get_args(hint)[0], key) for v in value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    raise ConfigError(f"{key} must be of type {getattr(hint, '__name__', hint)}, got {value!r}.")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping.")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]} (valid: {', '.join(sorted(names))})."
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def config_names() -> list[str]:
    """Names of the configs shipped with the package."""
    folder = resources.files("centrifuge") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(name_or_path: str | os.PathLike) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file.")
        text = path.read_text()
    else:
        resource = resources.files("centrifuge") / "configs" / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ConfigError(
                f"unknown config {name_or_path!r}: choose from {', '.join(config_names())} "
                "or give a YAML file."
            )
        text = resource.read_text()
    try:
        data = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name_or_path}: invalid YAML ({exc.__class__.__name__}).") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{name_or_path}: a config must be a mapping of sections.")
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.lr=0.01", "data.crop=64"]`` -> nested dict (values parsed as YAML scalars)."""
    nested: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value.")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"override key {key!r} must look like section.key (e.g. train.lr).")
        try:
            value = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError:
            value = raw
        nested.setdefault(parts[0], {})[parts[1]] = value
    return nested


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_from_dict(values: dict[str, Any]) -> Config:
    """Validate a nested dict (as written to ``config.yaml``) into a :class:`Config`."""
    return _build(Config, values, "")


def load_config(name_or_path: str | os.PathLike = "tiny", overrides: list[str] = ()) -> Config:
    """A shipped config by name or a YAML file, with ``section.key=value`` overrides applied."""
    return config_from_dict(_merge(_read_yaml(name_or_path), parse_overrides(list(overrides))))


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """``config`` with ``section.key=value`` overrides applied (checked like a file)."""
    return config_from_dict(_merge(config.to_dict(), parse_overrides(list(overrides))))


def dump_config(config: Config) -> str:
    """YAML text of a resolved config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
