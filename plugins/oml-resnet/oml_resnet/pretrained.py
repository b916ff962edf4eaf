"""The weights table of oml-resnet: torchvision's ImageNet ResNets and MoCo v2, by their OML names.

torchvision names its files with the first 8 hex digits of their sha256; the full values start with them and were
checked against independent records. MoCo v2 is verified by the md5 prefix OML 4.0 publishes (its sha256 is then
recorded in the cache). Preprocessing is OML 4.0's: shorter side to 256 (bicubic), centre crop 224.
"""

from __future__ import annotations

from typing import Any

from oml_core.zoo import WeightsEntry, entry

_TV = "https://download.pytorch.org/models"
HYPVIT_256_224: dict[str, Any] = {"type": "norm_resize_hypvit_torch", "im_size": 256, "crop_size": 224}
_TV_SOURCE = "https://github.com/pytorch/vision (IMAGENET1K weights)"


def _torchvision(name: str, arch: str, file: str, sha256: str, label: str, dim: int, recipe: str = "V1") -> WeightsEntry:
    return entry(
        name,
        arch=arch,
        extractor="resnet",
        urls=[f"{_TV}/{file}"],
        sha256=sha256,
        init_args={"gem_p": None, "remove_fc": True, "normalise_features": False},
        transforms=HYPVIT_256_224,
        summary=f"torchvision {label}, supervised on ImageNet-1k (IMAGENET1K_{recipe}), classifier removed",
        architecture=label,
        embedding_size=dim,
        licence="BSD-3-Clause",
        source=_TV_SOURCE,
    )


WEIGHTS: tuple[WeightsEntry, ...] = (
    _torchvision(
        "resnet18_imagenet1k_v1", "resnet18", "resnet18-f37072fd.pth",
        "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec", "ResNet-18", 512,
    ),
    _torchvision(
        "resnet34_imagenet1k_v1", "resnet34", "resnet34-b627a593.pth",
        "b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f", "ResNet-34", 512,
    ),
    _torchvision(
        "resnet50_imagenet1k_v1", "resnet50", "resnet50-0676ba61.pth",
        "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", "ResNet-50", 2048,
    ),
    _torchvision(
        "resnet50_imagenet1k_v2", "resnet50", "resnet50-11ad3fa6.pth",
        "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca", "ResNet-50", 2048, "V2",
    ),
    _torchvision(
        "resnet101_imagenet1k_v1", "resnet101", "resnet101-63fe2227.pth",
        "63fe2227b86e8f1f2063f43a75c84d195911b6a0eace650907dd3dc62dd49a0a", "ResNet-101", 2048,
    ),
    _torchvision(
        "resnet152_imagenet1k_v1", "resnet152", "resnet152-394f9c45.pth",
        "394f9c45966e3651a89bbb78a48410a6755854ce4a5ab64927cf1c7247f85e58", "ResNet-152", 2048,
    ),
    entry(
        "resnet50_moco_v2",
        arch="resnet50",
        extractor="resnet",
        urls=["https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar"],
        md5="a04e12f8",
        init_args={"gem_p": 5.0, "remove_fc": True, "normalise_features": False},
        transforms=HYPVIT_256_224,
        summary="MoCo v2 ResNet-50 (800 epochs), self-supervised on ImageNet-1k (Meta), with GeM pooling p=5 as in OML",
        architecture="ResNet-50 + GeM (p=5)",
        embedding_size=2048,
        licence="CC-BY-NC-4.0",
        source="https://github.com/facebookresearch/moco",
    ),
)

__all__ = ["WEIGHTS"]
