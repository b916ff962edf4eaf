"""OML 4's Lightning loggers by name (``from oml.lightning import logging``), for ``lightning.pytorch``.

``TensorBoardPipelineLogger`` is Lightning's ``TensorBoardLogger`` (it needs ``tensorboard``) with OML's two extra
methods: ``log_pipeline_info(cfg)`` (the run's config as hyper-parameters) and ``log_figure(fig, title, idx)``.
The loggers for trackers (Neptune, W&B, MLflow, ClearML) live in the tracker plugins.

Example::

    from oml_lightning import logging
    logger = logging.TensorBoardPipelineLogger(".")
    trainer = pl.Trainer(logger=logger, callbacks=[metric_callback])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


def _flat(config: Mapping[str, Any], prefix: str = "", sep: str = "|") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(_flat(value, name, sep))
        else:
            flat[name] = value if isinstance(value, int | float | str | bool) or value is None else str(value)
    return flat


class _PipelineLogging:
    """OML's ``IPipelineLogger`` methods on top of a Lightning logger."""

    def log_pipeline_info(self, cfg: Mapping[str, Any]) -> None:
        """Log the (nested) config as flat hyper-parameters, ``a|b|c`` keys as in OML."""
        self.log_hyperparams(_flat(cfg))  # type: ignore[attr-defined]

    def log_figure(self, fig: Any, title: str, idx: int) -> None:
        """Log a matplotlib figure under ``title`` at step ``idx``."""
        experiment = self.experiment  # type: ignore[attr-defined]
        if callable(getattr(experiment, "add_figure", None)):
            experiment.add_figure(title, fig, global_step=idx, close=False)
        else:
            from pathlib import Path

            path = Path(self.log_dir) / "figures" / f"{title.replace('/', '_')}_{idx}.png"  # type: ignore[attr-defined]
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, format="png")


class TensorBoardPipelineLogger(_PipelineLogging, TensorBoardLogger):
    """OML's ``TensorBoardPipelineLogger(save_dir, ...)``: Lightning's ``TensorBoardLogger``."""


class CSVPipelineLogger(_PipelineLogging, CSVLogger):
    """``CSVLogger`` with OML's pipeline-logger methods (figures are saved as PNG files next to the CSV)."""


__all__ = ["CSVPipelineLogger", "TensorBoardPipelineLogger"]
