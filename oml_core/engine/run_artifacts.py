"""Built-in engine plugins that keep what a run shows beyond numbers:

- :class:`ValidationSnapshot` saves the embeddings, labels, query/gallery flags, categories and image paths of the
  latest validation to ``<run_dir>/validation/embeddings.pt`` (what ``oml report`` draws from);
- :class:`TrackerArtifacts` sends the worst queries of each validation as a figure to the loggers that take
  figures, and uploads ``checkpoints/best.pt`` when training ends to loggers created with ``log_checkpoint``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch

from oml_core._markers import hookimpl

if TYPE_CHECKING:
    from oml_core.engine.core import Engine

#: Where the latest validation's embeddings are saved, relative to the run directory.
SNAPSHOT_PATH = "validation/embeddings.pt"
#: Queries and gallery items per query in the worst-queries figure.
WORST_QUERIES, WORST_TOP_K = 5, 5


class ValidationSnapshot:
    """Saves the latest validation set's embeddings and columns (rank 0, when the engine has a run directory)."""

    builtin_name = "validation_snapshot"

    @hookimpl
    def oml_embeddings_ready(self, engine: Engine, embeddings: torch.Tensor, dataset: Any) -> None:
        from oml_core.engine.checkpoint import atomic_save
        from oml_core.engine.validation import validation_columns

        if engine.run_dir is None or not engine.state.is_main_process or not hasattr(dataset, "df"):
            return
        columns = validation_columns(dataset)
        columns.pop("idx", None)
        snapshot = {
            "embeddings": embeddings.detach().float().cpu(),
            **columns,
            "epoch": engine.state.epoch,
            "step": engine.state.step,
            "distance": str(engine.options.metric_args.get("metric", "euclidean")),
        }
        atomic_save(snapshot, engine.run_dir / SNAPSHOT_PATH)


def worst_metric(monitor: str | None) -> tuple[str, int]:
    """The metric and k that rank the worst queries: the monitored one when it is per-query (``OVERALL/cmc/1``).

    Example:
        >>> worst_metric("OVERALL/precision/5"), worst_metric("OVERALL/fnmr@fmr/0.1")
        (('precision', 5), ('map', 5))
    """
    parts = (monitor or "").split("/")
    if len(parts) == 3 and parts[1] in ("cmc", "precision", "map") and parts[2].isdigit():
        return parts[1], int(parts[2])
    return "map", 5


class TrackerArtifacts:
    """Worst-query figures to loggers with ``log_figure`` (unless their ``log_figures`` is false) after every
    validation; ``checkpoints/best.pt`` to loggers with ``log_artifact`` and a true ``log_checkpoint`` at the end."""

    builtin_name = "tracker_artifacts"

    def __init__(self) -> None:
        self._warned = False

    @hookimpl
    def oml_validation_end(self, engine: Engine) -> None:
        loggers = [lg for lg in engine.loggers if callable(getattr(lg, "log_figure", None)) and getattr(lg, "log_figures", True)]
        results = engine.last_retrieval_results
        if not loggers or results is None or not engine.state.is_main_process or len(results) == 0:
            return
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            return
        metric, k = worst_metric(engine.options.monitor)
        try:
            figure = results.visualize_worst(
                metric, k, n_queries=WORST_QUERIES, dataset=engine.val_dataset, n_galleries_to_show=WORST_TOP_K
            )
        except Exception as exc:  # noqa: BLE001 - a picture that cannot be drawn must not stop training
            if not self._warned:
                self._warned = True
                print(f"oml: the worst-queries figure cannot be drawn ({type(exc).__name__}: {exc}); skipped", file=sys.stderr)
            return
        name = f"worst_queries/{metric}@{k}"
        for logger in loggers:
            logger.log_figure(name, figure, engine.state.step)
        plt.close(figure)

    @hookimpl(tryfirst=True)  # before MetricLogging closes the loggers
    def oml_fit_end(self, engine: Engine) -> None:
        if engine.run_dir is None or not engine.state.is_main_process:
            return
        best = engine.run_dir / "checkpoints" / "best.pt"
        for logger in engine.loggers:
            if best.is_file() and getattr(logger, "log_checkpoint", False) and callable(getattr(logger, "log_artifact", None)):
                logger.log_artifact(best, "checkpoints")


__all__ = ["SNAPSHOT_PATH", "TrackerArtifacts", "ValidationSnapshot", "worst_metric"]
