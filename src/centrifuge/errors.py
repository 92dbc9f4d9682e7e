"""Errors of the library; the CLI turns a :class:`CentrifugeError` into one line and exit 2."""

from __future__ import annotations


class CentrifugeError(Exception):
    """Base class: bad input or usage, explained in one clear sentence."""


class VideoError(CentrifugeError):
    """A video or image input cannot be read, or an output video cannot be written."""


class ConfigError(CentrifugeError):
    """A configuration file or a ``--set`` override is invalid."""


class ModelError(CentrifugeError):
    """A model name, weights file or checkpoint is unknown or invalid."""


class DataError(CentrifugeError):
    """A dataset folder is empty or unusable."""


class OutputExistsError(CentrifugeError):
    """An output already exists and ``--force`` was not given."""


class TrainingError(CentrifugeError):
    """Training cannot go on (for example the loss became NaN)."""
