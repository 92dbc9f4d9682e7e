"""Kinetics weights for the encoders of a model: weight selection to any width, and initialisation.

Narrower encoders start from the leading channels of every convolution of the full I3D (weight
selection, Xu et al., ICLR 2024), see :func:`select_encoder_weights`. A machine without the full
converted I3D can use a file already selected to one width (:func:`write_selected_weights`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from centrifuge.errors import ModelError
from centrifuge.kinetics.convert import FORMAT, kinetics_weights_path, load_kinetics_state
from centrifuge.models.i3d import I3DEncoder, InceptionBlock, Unit3D
from centrifuge.utils import atomic_path, cache_dir

__all__ = [
    "initialise_encoders",
    "select_encoder_weights",
    "selected_weights_path",
    "write_selected_weights",
]


def _leading(n: int) -> torch.Tensor:
    return torch.arange(n)


def select_encoder_weights(
    full: dict[str, torch.Tensor], encoder: I3DEncoder
) -> dict[str, torch.Tensor]:
    """Encoder weights for ``encoder`` (any width <= 1, RGB input) chosen from the full I3D.

    Weight selection: every convolution keeps its leading output channels; its input channels are
    the ones the previous layer kept, so that features keep their meaning through the Inception
    concatenations (branch ``k`` of a narrow block holds the leading channels of branch ``k`` of the
    full block). BatchNorm parameters and statistics follow their output channels; the statistics
    no longer match the narrower sums and must be re-estimated (``swa_utils.update_bn``).

    ``full``: a state dict as from :func:`load_kinetics_state` (keys ``encoder.*``). Returns the
    encoder's state dict (keys without ``encoder.``) for the endpoints it has.
    """
    first = encoder.blocks["Conv3d_1a_7x7"]
    if first.conv.in_channels != 3:
        raise ModelError("Kinetics weights fit an RGB encoder only (3 input channels).")
    out: dict[str, torch.Tensor] = {}

    def unit(prefix: str, module, keep_in: torch.Tensor) -> torch.Tensor:
        n_out = module.conv.out_channels
        weight = full[f"encoder.{prefix}.conv.weight"]
        if n_out > weight.shape[0] or len(keep_in) > weight.shape[1]:
            raise ModelError("Kinetics weights fit encoders of width at most 1.")
        keep_out = _leading(n_out)
        out[f"{prefix}.conv.weight"] = weight[keep_out][:, keep_in].clone()
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.bn.{name}"] = full[f"encoder.{prefix}.bn.{name}"][keep_out].clone()
        out[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
        return keep_out

    keep = _leading(3)
    for name, block in encoder.blocks.items():
        prefix = f"blocks.{name}"
        if isinstance(block, InceptionBlock):
            units = {
                "branch_0": [("branch_0", block.branch_0)],
                "branch_1": [("branch_1.0", block.branch_1[0]), ("branch_1.1", block.branch_1[1])],
                "branch_2": [("branch_2.0", block.branch_2[0]), ("branch_2.1", block.branch_2[1])],
                "branch_3": [("branch_3.1", block.branch_3[1])],
            }
            offset, pieces = 0, []
            for chain in units.values():
                kept = keep
                for sub, module in chain:
                    kept = unit(f"{prefix}.{sub}", module, kept)
                pieces.append(kept + offset)  # channels of this branch inside the full concat
                offset += full[f"encoder.{prefix}.{chain[-1][0]}.conv.weight"].shape[0]
            keep = torch.cat(pieces)
        elif isinstance(block, Unit3D):
            keep = unit(prefix, block, keep)
    return out


def selected_weights_path(width: float) -> Path:
    """Where :func:`write_selected_weights` puts the encoder of one ``width``, in the cache."""
    return cache_dir("weights") / f"kinetics-i3d-400-width{width:g}.safetensors"


def write_selected_weights(width: float, dest: str | Path, *, half: bool = True) -> Path:
    """The Kinetics encoder already selected to ``width`` (to ``Mixed_5c``), as safetensors: what a
    machine without the index and with little room needs (1.6 MB in fp16 at `small`'s width 1/4,
    against 25 MB for the whole I3D). Put it in that machine's cache as
    ``weights/`` + :func:`selected_weights_path`'s name."""
    encoder = I3DEncoder(width=width)
    state = select_encoder_weights(load_kinetics_state(), encoder)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        meta = {"format": f"{FORMAT}-selected", "width": f"{width:g}"}
        save_file(state, str(tmp), metadata=meta)
    return dest


def _selected_state(encoder: I3DEncoder, path: Path) -> dict[str, torch.Tensor]:
    """The encoder's weights from the full converted I3D, else from a file selected to its width."""
    if path.is_file():
        return select_encoder_weights(load_kinetics_state(path), encoder)
    narrow = selected_weights_path(encoder.width)
    if not narrow.is_file():
        load_kinetics_state(path)  # raises: what to run to get the weights
    try:
        state = load_file(str(narrow))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{narrow}: not a safetensors file ({exc}).") from None
    own = encoder.state_dict()
    if any(k not in state or state[k].shape != v.shape for k, v in own.items()):
        raise ModelError(f"{narrow}: does not fit an encoder of width {encoder.width:g}.")
    return {k: state[k] for k in own}


def initialise_encoders(model: torch.nn.Module, path: str | Path | None = None) -> list[str]:
    """Copy Kinetics weights (selected to each width) into every RGB I3D encoder of ``model``.

    The weights come from the converted I3D at ``path`` (default :func:`kinetics_weights_path`) or,
    where that is absent, from a file already selected to the encoder's width
    (:func:`selected_weights_path`). Encoders with other inputs (a corrector that sees the
    predictions) keep their initialisation. Returns the names of the encoders that were
    initialised. The BatchNorm statistics are the full network's and should be re-estimated on
    training inputs before training.
    """
    path = Path(path) if path is not None else kinetics_weights_path()
    done = []
    for name, module in model.named_modules():
        if isinstance(module, I3DEncoder) and module.blocks["Conv3d_1a_7x7"].conv.in_channels == 3:
            module.load_state_dict(_selected_state(module, path))
            done.append(name)
    if not done:
        raise ModelError("the model has no RGB I3D encoder to start from Kinetics weights.")
    return done
