"""OML's ResNet extractors (torchvision layout) in plain torch.

Example:
    >>> from oml_resnet import ResnetExtractor
    >>> ResnetExtractor(None, arch="resnet50").feat_dim
    2048
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "GeM": "oml_core.models",
        "get_transforms_for_pretrained": "oml_core.weights",
        "ARCHS": "oml_resnet.arch",
        "ResNet": "oml_resnet.arch",
        "ResNetArch": "oml_resnet.arch",
        "build_resnet": "oml_resnet.arch",
        "ResnetConfig": "oml_resnet.extractor",
        "ResnetExtractor": "oml_resnet.extractor",
    },
)

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
