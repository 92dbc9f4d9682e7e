"""centrifuge: split a video into layers (The Visual Centrifuge, Alayrac et al., CVPR 2019)."""

__version__ = "0.1.0"
