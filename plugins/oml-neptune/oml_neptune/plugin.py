"""Registers the ``neptune`` logger."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl


@hookimpl
def oml_register_loggers(registry: Any) -> None:
    from oml_neptune.logger import NeptuneLogger, NeptuneLoggerConfig

    registry.add(
        "neptune",
        config=NeptuneLoggerConfig,
        factory=NeptuneLogger,
        summary="Neptune (async, or offline to sync later): config, metrics, images, best checkpoint",
    )
