"""The ``oml_clip`` plugin: registers the ``vit_clip`` and ``vit_unicom`` extractors and their weights table."""

from __future__ import annotations

from typing import Any

from oml_clip import pretrained
from oml_core import hookimpl
from oml_core.zoo import register_table


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    from oml_clip.extractor import ViTCLIPConfig, ViTUnicomConfig, create_vit_clip, create_vit_unicom

    registry.add(
        "vit_clip",
        config=ViTCLIPConfig,
        factory=create_vit_clip,
        summary="CLIP image tower (OpenAI CLIP, ruCLIP), published checkpoint layout, fixed input size",
        example={"arch": "vitb32_224"},
    )
    registry.add(
        "vit_unicom",
        config=ViTUnicomConfig,
        factory=create_vit_unicom,
        summary="Unicom ViT (DeepGlint), published checkpoint layout, fixed input size",
        example={"arch": "vitb32_unicom"},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    register_table(zoo, pretrained.WEIGHTS)
