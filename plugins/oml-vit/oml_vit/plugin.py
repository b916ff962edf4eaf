"""The ``oml_vit`` plugin: registers the ``vit`` extractor and its weights table (``oml_vit.pretrained``)."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl
from oml_core.zoo import register_table
from oml_vit import pretrained


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    from oml_vit.extractor import ViTConfig, create_vit

    registry.add(
        "vit",
        config=ViTConfig,
        factory=create_vit,
        summary="DINO / DINOv2 Vision Transformer (vits16 ... vitl14_reg), official checkpoint layout",
        example={"arch": "vits16"},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    register_table(zoo, pretrained.WEIGHTS)
