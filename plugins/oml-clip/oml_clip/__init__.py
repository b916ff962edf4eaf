"""OML's CLIP-family image extractors in plain torch: OpenAI CLIP and ruCLIP image towers, and Unicom.

Example:
    >>> from oml_clip import ViTCLIPExtractor
    >>> ViTCLIPExtractor(None, arch="vitb32_224").feat_dim
    512
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CLIP_ARCHS": "oml_clip.arch",
        "UNICOM_ARCHS": "oml_clip.arch",
        "ClipVisual": "oml_clip.arch",
        "UnicomVisual": "oml_clip.arch",
        "build_clip_visual": "oml_clip.arch",
        "build_unicom_visual": "oml_clip.arch",
        "ViTCLIPConfig": "oml_clip.extractor",
        "ViTCLIPExtractor": "oml_clip.extractor",
        "ViTUnicomConfig": "oml_clip.extractor",
        "ViTUnicomExtractor": "oml_clip.extractor",
        "get_transforms_for_pretrained": "oml_core.weights",
    },
)

__all__ = [
    "CLIP_ARCHS",
    "UNICOM_ARCHS",
    "ClipVisual",
    "UnicomVisual",
    "ViTCLIPConfig",
    "ViTCLIPExtractor",
    "ViTUnicomConfig",
    "ViTUnicomExtractor",
    "build_clip_visual",
    "build_unicom_visual",
    "get_transforms_for_pretrained",
]
