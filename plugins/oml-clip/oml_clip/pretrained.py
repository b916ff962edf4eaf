"""The weights table of oml-clip: OpenAI CLIP and ruCLIP image towers and Unicom, by their OML names.

OpenAI names each file's directory with its sha256 (their loader checks it), so the full sha256 is known; ruCLIP is
verified by the full md5 that OML 4.0 publishes (its sha256 is then recorded in the cache); Unicom's sha256 values
are those of its own loader. OpenAI's files are TorchScript archives: only their tensors are read.
"""

from __future__ import annotations

from typing import Any

from oml_core.zoo import WeightsEntry, entry

_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_SBER = "https://huggingface.co/sberbank-ai"
_UNICOM = "https://github.com/deepglint/unicom/releases/download"
CLIP_224: dict[str, Any] = {"type": "norm_resize_albu_clip", "im_size": 224}


def _openai(name: str, arch: str, sha256: str, file: str, md5: str, label: str, dim: int) -> WeightsEntry:
    return entry(
        name,
        arch=arch,
        extractor="vit_clip",
        urls=[f"{_OPENAI}/{sha256}/{file}"],
        sha256=sha256,
        md5=md5,
        filename=f"{name}.ckpt",
        format="clip_torchscript",
        init_args={"normalise_features": False},
        transforms=CLIP_224,
        summary=f"OpenAI CLIP {label} image tower, contrastive image-text pre-training on 400M pairs",
        architecture=f"CLIP {label} (visual)",
        embedding_size=dim,
        licence="MIT",
        source="https://github.com/openai/CLIP",
    )


def _sber(name: str, arch: str, repo: str, md5: str, label: str, dim: int) -> WeightsEntry:
    return entry(
        name,
        arch=arch,
        extractor="vit_clip",
        urls=[f"{_SBER}/{repo}/resolve/main/pytorch_model.bin"],
        md5=md5,
        filename=f"{name}.ckpt",
        init_args={"normalise_features": False},
        transforms=CLIP_224,
        summary=f"ruCLIP {label} image tower (Sber AI), image-text pre-training with Russian captions",
        architecture=f"CLIP {label} (visual)",
        embedding_size=dim,
        licence="Apache-2.0",
        source=f"https://huggingface.co/sberbank-ai/{repo}",
    )


def _unicom(name: str, tag: str, file: str, sha256: str, im_size: int, label: str, dim: int) -> WeightsEntry:
    return entry(
        name,
        arch=name,
        extractor="vit_unicom",
        urls=[f"{_UNICOM}/{tag}/{file}"],
        sha256=sha256,
        init_args={"normalise_features": True},
        transforms={"type": "unicom_transforms", "im_size": im_size},
        summary=f"Unicom {label} (DeepGlint): universal and compact representation learning by cluster discrimination",
        architecture=f"Unicom {label}",
        embedding_size=dim,
        licence="see source (deepglint/unicom)",
        source="https://github.com/deepglint/unicom",
    )


WEIGHTS: tuple[WeightsEntry, ...] = (
    _openai(
        "openai_vitb16_224", "vitb16_224", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
        "ViT-B-16.pt", "44c3d804ecac03d9545ac1a3adbca3a6", "ViT-B/16", 512,
    ),
    _openai(
        "openai_vitb32_224", "vitb32_224", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        "ViT-B-32.pt", "3ba34e387b24dfe590eeb1ae6a8a122b", "ViT-B/32", 512,
    ),
    _openai(
        "openai_vitl14_224", "vitl14_224", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        "ViT-L-14.pt", "096db1af569b284eb76b3881534822d9", "ViT-L/14", 768,
    ),
    _sber("sber_vitb16_224", "vitb16_224", "ruclip-vit-base-patch16-224", "7882e07674d78c674e33cb892a68bbfc", "ViT-B/16", 512),
    _sber("sber_vitb32_224", "vitb32_224", "ruclip-vit-base-patch32-224", "e2c4dab46a3cfa608bdd762973e90d32", "ViT-B/32", 512),
    _sber("sber_vitl14_224", "vitl14_224", "ruclip-vit-large-patch14-224", "9b4a1cd25d15bad4ffd2ba6e34b8a67c", "ViT-L/14", 768),
    _unicom(
        "vitb32_unicom", "b32", "FP16-ViT-B-32.pt", "f9d5696a9b58dbbbefee2d31615ca59084f2895a0fdd2ca4c235e0f9b2793f7a",
        224, "ViT-B/32", 512,
    ),
    _unicom(
        "vitb16_unicom", "b16", "FP16-ViT-B-16.pt", "c04f324f7c3b4435667236ec6c0eca1cd62f9d64fbfc2d06f8e8e60e6497edef",
        224, "ViT-B/16", 768,
    ),
    _unicom(
        "vitl14_unicom", "l14", "FP16-ViT-L-14.pt", "ff3ab62ff782876460099e6e0ee17b73a7c01109de2fffd595f16f4129404bbd",
        224, "ViT-L/14", 768,
    ),
    _unicom(
        "vitl14_336px_unicom", "l14_336px", "FP16-ViT-L-14-336px.pt",
        "3916ab5aed3b522fc90345be8b4457fe5dad60801ad2af5a6871c0c096e8d7ea", 336, "ViT-L/14@336px", 768,
    ),
)

__all__ = ["WEIGHTS"]
