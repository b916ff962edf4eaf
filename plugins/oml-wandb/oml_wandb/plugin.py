"""Registers the ``wandb`` logger."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl


@hookimpl
def oml_register_loggers(registry: Any) -> None:
    from oml_wandb.logger import WandbLogger, WandbLoggerConfig

    registry.add(
        "wandb",
        config=WandbLoggerConfig,
        factory=WandbLogger,
        summary="Weights & Biases run (online, or offline files to sync later): config, metrics, images, best checkpoint",
    )
