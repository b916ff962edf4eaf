"""The ``oml_vit`` plugin: registers the ``vit`` extractor and the DINO / DINOv2 weights."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl
from oml_core.weights import PLACEHOLDER_SHA256
from oml_vit.extractor import ViTConfig, create_vit

_FB = "https://dl.fbaipublicfiles.com"
#: What the DINO checkpoints were evaluated with: resize to 224 and ImageNet normalisation (as in OML).
TRANSFORMS_224: dict[str, Any] = {"type": "norm_resize_torch", "im_size": 224}

# name: (arch, url, sha256, summary). The sha256 values were checked against several independent records of the
# published files; PLACEHOLDER_SHA256 marks files whose full sha256 we could not confirm: those entries refuse to
# download and tell the user to pass a local file instead (fill the hash in once it is known).
WEIGHTS: dict[str, tuple[str, str, str, str]] = {
    "vits16_dino": (
        "vits16",
        f"{_FB}/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth",
        PLACEHOLDER_SHA256,
        "DINO ViT-S/16, self-supervised on ImageNet-1k (Meta)",
    ),
    "vits8_dino": (
        "vits8",
        f"{_FB}/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
        PLACEHOLDER_SHA256,
        "DINO ViT-S/8, self-supervised on ImageNet-1k (Meta)",
    ),
    "vitb16_dino": (
        "vitb16",
        f"{_FB}/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        "bf34ad0f424b9029b593e8dc3ed553bf26e88bcba0d32bf3e62a6209cb64c85e",
        "DINO ViT-B/16, self-supervised on ImageNet-1k (Meta)",
    ),
    "vitb8_dino": (
        "vitb8",
        f"{_FB}/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth",
        PLACEHOLDER_SHA256,
        "DINO ViT-B/8, self-supervised on ImageNet-1k (Meta)",
    ),
    "vits14_dinov2": (
        "vits14",
        f"{_FB}/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth",
        "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9",
        "DINOv2 ViT-S/14 distilled, self-supervised on LVD-142M (Meta)",
    ),
    "vitb14_dinov2": (
        "vitb14",
        f"{_FB}/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
        "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
        "DINOv2 ViT-B/14 distilled, self-supervised on LVD-142M (Meta)",
    ),
    "vitl14_dinov2": (
        "vitl14",
        f"{_FB}/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
        "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
        "DINOv2 ViT-L/14 distilled, self-supervised on LVD-142M (Meta)",
    ),
    "vits14_reg_dinov2": (
        "vits14_reg",
        f"{_FB}/dinov2/dinov2_vits14/dinov2_vits14_reg4_pretrain.pth",
        "f433177089a681826f849f194ece3bb48f4d63fb38d32fc837e3dc7a4e5641fb",
        "DINOv2 ViT-S/14 with 4 registers, self-supervised on LVD-142M (Meta)",
    ),
    "vitb14_reg_dinov2": (
        "vitb14_reg",
        f"{_FB}/dinov2/dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth",
        PLACEHOLDER_SHA256,
        "DINOv2 ViT-B/14 with 4 registers, self-supervised on LVD-142M (Meta)",
    ),
    "vitl14_reg_dinov2": (
        "vitl14_reg",
        f"{_FB}/dinov2/dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth",
        PLACEHOLDER_SHA256,
        "DINOv2 ViT-L/14 with 4 registers, self-supervised on LVD-142M (Meta)",
    ),
}


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    registry.add(
        "vit",
        config=ViTConfig,
        factory=create_vit,
        summary="DINO / DINOv2 Vision Transformer (vits16 ... vitl14_reg), official checkpoint layout",
        example={"arch": "vits16"},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    for name, (arch, url, sha256, summary) in WEIGHTS.items():
        zoo.add(name, url=url, sha256=sha256, arch=arch, extractor="vit", transforms=TRANSFORMS_224, summary=summary)
