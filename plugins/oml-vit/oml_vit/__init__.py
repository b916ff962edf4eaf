"""OML's Vision Transformer extractors (DINO, DINOv2) in plain torch.

Example:
    >>> from oml_vit import ViTExtractor
    >>> ViTExtractor(None, arch="vits16").feat_dim
    384
"""

from oml_core.weights import get_transforms_for_pretrained
from oml_vit.arch import ARCHS, VisionTransformer, ViTArch, build_vit
from oml_vit.extractor import ViTConfig, ViTExtractor

__all__ = [
    "ARCHS",
    "ViTArch",
    "ViTConfig",
    "ViTExtractor",
    "VisionTransformer",
    "build_vit",
    "get_transforms_for_pretrained",
]
