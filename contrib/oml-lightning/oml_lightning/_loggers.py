"""Lightning loggers backed by OML's logger registry: any OML logger (``mlflow``, ``wandb``, ``clearml``,
``neptune``, ``csv``, ``tensorboard``, or a plugin's) chosen by name, as in an OML config's ``loggers``.

Written once as a mixin; ``oml_lightning.OMLLogger`` and ``oml_lightning.pytorch_lightning.OMLLogger`` bind it to each
Lightning package's ``Logger`` class.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning_utilities.core.rank_zero import rank_zero_only


class OMLLoggerLogic:
    """``OMLLogger("mlflow", save_dir="runs/exp1", tracking_uri="http://127.0.0.1:5000", log_checkpoint=True)``:
    the OML logger registered under that name, with those options, writing for the run directory ``save_dir``.

    Hyper-parameters, metrics (``self.log`` values, ``MetricValCallback``'s metrics) and the callback's worst-query
    figures (``log_images=True``) go to the tracker; with ``log_checkpoint=True`` the best checkpoint of Lightning's
    ``ModelCheckpoint`` is uploaded when training ends. The same ``save_dir`` later continues the same tracked run.
    The tracker is contacted on rank 0 only, at the first thing logged; a tracker that cannot be reached then raises
    ``oml_core.engine.tracking.TrackerError``. ``host``: an ``oml_core.Host`` (default: one with the installed plugins).
    """

    def __init__(self, logger_type: str, save_dir: str | Path = "runs", *, host: Any = None, **options: Any) -> None:
        super().__init__()
        self.logger_type = logger_type
        self._save_dir = Path(save_dir)
        self._options = options
        self._host = host
        self._oml_logger: Any = None
        self._best_checkpoint: str | None = None
        self._spec_check()  # an unknown name or option fails here, before any connection

    def _spec_check(self) -> None:
        registry = self._registry()
        spec = registry.get(self.logger_type)  # UnknownComponentError lists the installed loggers
        self._config = registry._owner.structure(self._options, spec.config, path=f"loggers.{self.logger_type}")

    def _registry(self) -> Any:
        if self._host is None:
            from oml_core import Host

            self._host = Host()
        return self._host.registries.loggers

    @property
    def oml_logger(self) -> Any:
        """The OML logger (created, and its tracker contacted, on first use)."""
        if self._oml_logger is None:
            self._save_dir.mkdir(parents=True, exist_ok=True)
            self._oml_logger = self._registry().create(self.logger_type, self._config, run_dir=self._save_dir)
        return self._oml_logger

    @property
    def experiment(self) -> Any:
        return self.oml_logger

    @property
    def name(self) -> str:
        return self.logger_type

    @property
    def version(self) -> str:
        return self._save_dir.name

    @property
    def save_dir(self) -> str:
        return str(self._save_dir)

    @property
    def log_dir(self) -> str:
        return str(self._save_dir)

    @property
    def root_dir(self) -> str:
        return str(self._save_dir)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params or {})
        self.oml_logger.log_hparams(values)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.oml_logger.log_metrics({k: float(v) for k, v in metrics.items()}, int(step or 0))

    @rank_zero_only
    def log_figure(self, name: str, figure: Any, step: int) -> None:
        if getattr(self.oml_logger, "log_figures", True):
            self.oml_logger.log_figure(name, figure, step)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        best = getattr(checkpoint_callback, "best_model_path", "") or getattr(checkpoint_callback, "last_model_path", "")
        if best:
            self._best_checkpoint = best

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._oml_logger is None:
            return
        logger = self._oml_logger
        if self._best_checkpoint and getattr(logger, "log_checkpoint", False) and Path(self._best_checkpoint).is_file():
            logger.log_artifact(self._best_checkpoint, "checkpoints")
        logger.close()
        self._oml_logger = None
