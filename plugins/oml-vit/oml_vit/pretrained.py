"""The weights table of oml-vit: every DINO / DINOv2 checkpoint and OML's own ViT checkpoints, by their OML names.

Checksums: a full sha256 where it was confirmed against independent records of the published file; otherwise the
md5 prefix that OML 4.0 publishes for the file (verified on download, after which the file's sha256 is recorded in
the cache). Preprocessing is what OML 4.0 pairs with each checkpoint (``get_transforms_for_pretrained``).
"""

from __future__ import annotations

from typing import Any

from oml_core.zoo import WeightsEntry, entry

_FB = "https://dl.fbaipublicfiles.com"
#: OML's checkpoint storage (OML 4.0's ``STORAGE_CKPTS``)
OML_STORAGE = "https://oml.daloroserver.com/download/checkpoints"

#: resize to 224 x 224, ImageNet normalisation (OML's ``norm_resize_torch``)
RESIZE_224: dict[str, Any] = {"type": "norm_resize_torch", "im_size": 224}
#: shorter side to 224 (bicubic), centre crop 224 (OML's ``norm_resize_hypvit_torch``)
HYPVIT_224: dict[str, Any] = {"type": "norm_resize_hypvit_torch", "im_size": 224, "crop_size": 224}
#: shorter side to 256 (bicubic), centre crop 224
HYPVIT_256_224: dict[str, Any] = {"type": "norm_resize_hypvit_torch", "im_size": 256, "crop_size": 224}
#: longer side to 224, pad to a square (OML's ``norm_resize_albu``, without albumentations)
ALBU_224: dict[str, Any] = {"type": "norm_resize_albu", "im_size": 224}

_DINO_SOURCE = "https://github.com/facebookresearch/dino"
_DINOV2_SOURCE = "https://github.com/facebookresearch/dinov2"
_OML_SOURCE = "https://github.com/OML-Team/open-metric-learning (OML 4.0 model zoo)"


def _dino(name: str, arch: str, path: str, md5: str, sha256: str | None, architecture: str, dim: int) -> WeightsEntry:
    return entry(
        name,
        arch=arch,
        extractor="vit",
        urls=[f"{_FB}/dino/{path}"],
        md5=md5,
        sha256=sha256,
        filename=f"{name}.ckpt",
        init_args={"normalise_features": False},
        transforms=RESIZE_224,
        summary=f"DINO {architecture}, self-supervised on ImageNet-1k (Meta)",
        architecture=architecture,
        embedding_size=dim,
        licence="Apache-2.0",
        source=_DINO_SOURCE,
    )


def _dinov2(name: str, arch: str, path: str, md5: str, sha256: str | None, architecture: str, dim: int) -> WeightsEntry:
    registers = " with 4 registers" if "reg" in arch else ""
    return entry(
        name,
        arch=arch,
        extractor="vit",
        urls=[f"{_FB}/dinov2/{path}"],
        md5=md5,
        sha256=sha256,
        filename=path.rsplit("/", 1)[-1].replace("_pretrain.pth", ".ckpt"),
        init_args={"normalise_features": False},
        transforms=HYPVIT_224,
        summary=f"DINOv2 {architecture}{registers}, distilled, self-supervised on LVD-142M (Meta)",
        architecture=f"{architecture}{registers}",
        embedding_size=dim,
        licence="Apache-2.0",
        source=_DINOV2_SOURCE,
    )


def _oml(name: str, dataset: str, file: str, md5: str, normalise: bool, transforms: dict[str, Any], cmc1: float) -> WeightsEntry:
    return entry(
        name,
        arch="vits16",
        extractor="vit",
        urls=[f"{OML_STORAGE}/{file}"],
        md5=md5,
        filename=f"{name}.ckpt",
        init_args={"normalise_features": normalise},
        transforms=transforms,
        summary=f"ViT-S/16 from DINO, fine-tuned by OML on {dataset}",
        architecture="ViT-S/16",
        embedding_size=384,
        licence="Apache-2.0",
        source=_OML_SOURCE,
        metrics={"dataset": dataset, "cmc@1": cmc1},
    )


WEIGHTS: tuple[WeightsEntry, ...] = (
    _dino("vits16_dino", "vits16", "dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth", "cf0f22", None, "ViT-S/16", 384),
    _dino("vits8_dino", "vits8", "dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth", "230cd5", None, "ViT-S/8", 384),
    _dino(
        "vitb16_dino",
        "vitb16",
        "dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
        "552daf",
        "bf34ad0f424b9029b593e8dc3ed553bf26e88bcba0d32bf3e62a6209cb64c85e",
        "ViT-B/16",
        768,
    ),
    _dino("vitb8_dino", "vitb8", "dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth", "556550", None, "ViT-B/8", 768),
    _dinov2(
        "vits14_dinov2",
        "vits14",
        "dinov2_vits14/dinov2_vits14_pretrain.pth",
        "2e405c",
        "b938bf1bc15cd2ec0feacfe3a1bb553fe8ea9ca46a7e1d8d00217f29aef60cd9",
        "ViT-S/14",
        384,
    ),
    _dinov2(
        "vits14_reg_dinov2",
        "vits14_reg",
        "dinov2_vits14/dinov2_vits14_reg4_pretrain.pth",
        "2a50c5",
        "f433177089a681826f849f194ece3bb48f4d63fb38d32fc837e3dc7a4e5641fb",
        "ViT-S/14",
        384,
    ),
    _dinov2(
        "vitb14_dinov2",
        "vitb14",
        "dinov2_vitb14/dinov2_vitb14_pretrain.pth",
        "8635e7",
        "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",
        "ViT-B/14",
        768,
    ),
    _dinov2("vitb14_reg_dinov2", "vitb14_reg", "dinov2_vitb14/dinov2_vitb14_reg4_pretrain.pth", "13d13c", None, "ViT-B/14", 768),
    _dinov2(
        "vitl14_dinov2",
        "vitl14",
        "dinov2_vitl14/dinov2_vitl14_pretrain.pth",
        "19a02c",
        "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",
        "ViT-L/14",
        1024,
    ),
    _dinov2("vitl14_reg_dinov2", "vitl14_reg", "dinov2_vitl14/dinov2_vitl14_reg4_pretrain.pth", "8b6364", None, "ViT-L/14", 1024),
    _oml("vits16_inshop", "DeepFashion InShop", "inshop/vits16_inshop_a76b85.ckpt", "a76b85", False, HYPVIT_224, 0.921),
    _oml("vits16_sop", "Stanford Online Products", "sop/vits16_sop_21e743.ckpt", "21e743", True, HYPVIT_224, 0.866),
    _oml("vits16_cars", "Stanford Cars", "cars/vits16_cars.ckpt", "9f1e59", False, ALBU_224, 0.907),
    _oml("vits16_cub", "CUB-200-2011", "cub/vits16_cub.ckpt", "e82633", False, ALBU_224, 0.837),
    entry(
        "vits16_224_mlp_384_inshop",
        arch="vits16",
        extractor="extractor_with_mlp",
        urls=[f"{OML_STORAGE}/inshop/vits16_224_mlp_384_inshop.ckpt"],
        md5="35244966",
        filename="vits16_224_mlp_384_inshop.ckpt",
        init_args={
            "extractor": {"type": "vit", "arch": "vits16", "normalise_features": False},
            "mlp_features": [384],
            "train_backbone": True,
        },
        transforms=HYPVIT_256_224,
        summary="ViT-S/16 with an MLP head (384), fine-tuned by OML on DeepFashion InShop (OML's ExtractorWithMLP)",
        architecture="ViT-S/16 + MLP [384]",
        embedding_size=384,
        licence="Apache-2.0",
        source=_OML_SOURCE,
        metrics={"dataset": "DeepFashion InShop"},
    ),
)

#: OML 4.0 also publishes the fine-tuned checkpoints on Google Drive (file ids), for users who fetch them by hand.
GOOGLE_DRIVE_IDS: dict[str, str] = {
    "vits16_inshop": "1niX-TC8cj6j369t7iU2baHQSVN3MVJbW",
    "vits16_sop": "1zuGRHvF2KHd59aw7i7367OH_tQNOGz7A",
    "vits16_cub": "1p2tUosFpGXh5sCCdzlXtjV87kCDfG34G",
    "vits16_cars": "1hcOxDRRXrKr6ZTCyBauaY8Ue-pok4Icg",
}

__all__ = ["GOOGLE_DRIVE_IDS", "OML_STORAGE", "WEIGHTS"]
