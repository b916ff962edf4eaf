"""OML's Vision Transformer extractors (DINO, DINOv2) in plain torch.

Example:
    >>> from oml_vit import ViTExtractor
    >>> ViTExtractor(None, arch="vits16").feat_dim
    384
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "get_transforms_for_pretrained": "oml_core.weights",
        "ARCHS": "oml_vit.arch",
        "VisionTransformer": "oml_vit.arch",
        "ViTArch": "oml_vit.arch",
        "build_vit": "oml_vit.arch",
        "ViTConfig": "oml_vit.extractor",
        "ViTExtractor": "oml_vit.extractor",
    },
)

__all__ = [
    "ARCHS",
    "ViTArch",
    "ViTConfig",
    "ViTExtractor",
    "VisionTransformer",
    "build_vit",
    "get_transforms_for_pretrained",
]
