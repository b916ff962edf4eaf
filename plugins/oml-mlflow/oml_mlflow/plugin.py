"""Registers the ``mlflow`` logger."""

from __future__ import annotations

from typing import Any

from oml_core import hookimpl


@hookimpl
def oml_register_loggers(registry: Any) -> None:
    from oml_mlflow.logger import MLflowLogger, MLflowLoggerConfig

    registry.add(
        "mlflow",
        config=MLflowLoggerConfig,
        factory=MLflowLogger,
        summary="MLflow run: config as params, metrics, worst-query images, best checkpoint (tracking server or sqlite store)",
    )
