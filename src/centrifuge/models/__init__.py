"""Model definitions: I3D encoder, U-Net decoder, CentrifugeNet, registry and weight files."""

from centrifuge.models.centrifuge import CentrifugeNet, ModelSpec, UNet3D
from centrifuge.models.i3d import ENDPOINTS, I3DEncoder
from centrifuge.models.registry import MODEL_CONFIGS, build_model, model_kwargs

__all__ = [
    "ENDPOINTS",
    "MODEL_CONFIGS",
    "CentrifugeNet",
    "I3DEncoder",
    "ModelSpec",
    "UNet3D",
    "build_model",
    "model_kwargs",
]
