"""OML's CLIP-family image extractors in plain torch: OpenAI CLIP and ruCLIP image towers, and Unicom.

Example:
    >>> from oml_clip import ViTCLIPExtractor
    >>> ViTCLIPExtractor(None, arch="vitb32_224").feat_dim
    512
"""

from oml_clip.arch import CLIP_ARCHS, UNICOM_ARCHS, ClipVisual, UnicomVisual, build_clip_visual, build_unicom_visual
from oml_clip.extractor import ViTCLIPConfig, ViTCLIPExtractor, ViTUnicomConfig, ViTUnicomExtractor
from oml_core.weights import get_transforms_for_pretrained

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
