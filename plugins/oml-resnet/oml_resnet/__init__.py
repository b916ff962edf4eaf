"""OML's ResNet extractors (torchvision layout) in plain torch.

Example:
    >>> from oml_resnet import ResnetExtractor
    >>> ResnetExtractor(None, arch="resnet50").feat_dim
    2048
"""

from oml_core.models import GeM
from oml_core.weights import get_transforms_for_pretrained
from oml_resnet.arch import ARCHS, ResNet, ResNetArch, build_resnet
from oml_resnet.extractor import ResnetConfig, ResnetExtractor

__all__ = [
    "ARCHS",
    "GeM",
    "ResNet",
    "ResNetArch",
    "ResnetConfig",
    "ResnetExtractor",
    "build_resnet",
    "get_transforms_for_pretrained",
]
