"""Inference-only folding of BatchNorm into the preceding (transposed) convolution.

In eval mode ``BN(conv(x)) = conv'(x)`` with rescaled weights and a bias, so a 3D ConvNet saves one
full pass over every feature map (memory-bound on CPUs). The folded model computes the same
function up to float rounding and cannot be trained further.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from centrifuge.models.decoder import UpBlock
from centrifuge.models.i3d import Unit3D

__all__ = ["fold_batchnorm"]


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every Conv->BN pair folded into one conv; ``model``
    itself (in eval mode) when it has nothing to fold."""
    if not any(isinstance(m, (Unit3D, UpBlock)) for m in model.modules()):
        return model.eval()
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, Unit3D) and isinstance(module.bn, nn.BatchNorm3d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
        elif isinstance(module, UpBlock) and isinstance(module.up_bn, nn.BatchNorm3d):
            module.up = fuse_conv_bn_eval(module.up, module.up_bn, transpose=True)
            module.up_bn = nn.Identity()
    return folded
