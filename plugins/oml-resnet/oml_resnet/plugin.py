"""The ``oml_resnet`` plugin: registers the ``resnet`` extractor and its weights table (``oml_resnet.pretrained``)."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl
from oml_core.zoo import register_table
from oml_resnet import pretrained


@hookimpl
def oml_register_extractors(registry: Any) -> None:
    from oml_resnet.extractor import ResnetConfig, create_resnet

    registry.add(
        "resnet",
        config=ResnetConfig,
        factory=create_resnet,
        summary="torchvision-layout ResNet 18/34/50/101/152, average or GeM pooling, classifier removed",
        example={"arch": "resnet18", "gem_p": 3.0, "normalise_features": True},
    )


@hookimpl
def oml_register_weights(zoo: Any) -> None:
    register_table(zoo, pretrained.WEIGHTS)
