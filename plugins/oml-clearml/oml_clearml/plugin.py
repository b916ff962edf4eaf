"""Registers the ``clearml`` logger."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl


@hookimpl
def oml_register_loggers(registry: Any) -> None:
    from oml_clearml.logger import ClearMLLogger, ClearMLLoggerConfig

    registry.add(
        "clearml",
        config=ClearMLLoggerConfig,
        factory=ClearMLLogger,
        summary="ClearML (online or offline session): config, metrics, images, best checkpoint",
    )
