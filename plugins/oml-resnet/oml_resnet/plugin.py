"""The ``oml_resnet`` plugin: registers the ``resnet`` extractor and the torchvision / MoCo v2 weights."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl
from oml_core.weights import PLACEHOLDER_SHA256
from oml_resnet.extractor import ResnetConfig, create_resnet

_TV = "https://download.pytorch.org/models"
#: Resize to 224 x 224 and ImageNet normalisation (the ``norm_resize_torch`` preset of the core transforms).
TRANSFORMS_224: dict[str, Any] = {"type": "norm_resize_torch", "im_size": 224}

# name: (arch, url, sha256, summary). torchvision names its files with the first 8 hex digits of their sha256; the
# full values below start with them and were checked against several independent records. MoCo's full sha256 could
# not be confirmed: PLACEHOLDER_SHA256 makes that entry refuse to download and ask for a local file.
WEIGHTS: dict[str, tuple[str, str, str, str]] = {
    "resnet18_imagenet1k_v1": (
        "resnet18",
        f"{_TV}/resnet18-f37072fd.pth",
        "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        "torchvision ResNet-18, supervised on ImageNet-1k (IMAGENET1K_V1)",
    ),
    "resnet34_imagenet1k_v1": (
        "resnet34",
        f"{_TV}/resnet34-b627a593.pth",
        "b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f",
        "torchvision ResNet-34, supervised on ImageNet-1k (IMAGENET1K_V1)",
    ),
    "resnet50_imagenet1k_v1": (
        "resnet50",
        f"{_TV}/resnet50-0676ba61.pth",
        "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
        "torchvision ResNet-50, supervised on ImageNet-1k (IMAGENET1K_V1)",
    ),
    "resnet50_imagenet1k_v2": (
        "resnet50",
        f"{_TV}/resnet50-11ad3fa6.pth",
        "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca",
        "torchvision ResNet-50, supervised on ImageNet-1k (IMAGENET1K_V2, the newer recipe)",
    ),
    "resnet101_imagenet1k_v1": (
        "resnet101",
        f"{_TV}/resnet101-63fe2227.pth",
        "63fe2227b86e8f1f2063f43a75c84d195911b6a0eace650907dd3dc62dd49a0a",
        "torchvision ResNet-101, supervised on ImageNet-1k (IMAGENET1K_V1)",
    ),
    "resnet152_imagenet1k_v1": (
        "resnet152",
        f"{_TV}/resnet152-394f9c45.pth",
        "394f9c45966e3651a89bbb78a48410a6755854ce4a5ab64927cf1c7247f85e58",
        "torchvision ResNet-152, supervised on ImageNet-1k (IMAGENET1K_V1)",
    ),
    "resnet50_moco_v2": (
        "resnet50",
        "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
        PLACEHOLDER_SHA256,
        "MoCo v2 ResNet-50 (800 epochs), self-supervised on ImageNet-1k (Meta); use with GeM p=5 as OML does",
    ),
}

#: The pooling that ``ResnetExtractor.from_pretrained`` uses for weights that OML pairs with GeM.
POOLING: dict[str, float] = {"resnet50_moco_v2": 5.0}


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    registry.add(
        "resnet",
        config=ResnetConfig,
        factory=create_resnet,
        summary="torchvision-layout ResNet 18/34/50/101/152, average or GeM pooling, classifier removed",
        example={"arch": "resnet18", "gem_p": 3.0, "normalise_features": True},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    for name, (arch, url, sha256, summary) in WEIGHTS.items():
        zoo.add(name, url=url, sha256=sha256, arch=arch, extractor="resnet", transforms=TRANSFORMS_224, summary=summary)
