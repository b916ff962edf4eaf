"""The plugin module named by the ``oml`` entry point in pyproject.toml: OML imports it when a host starts and calls
the ``@hookimpl`` functions below. Registration hooks add components; lifecycle hooks run during training.

Every hook name starts with ``oml_``; a misspelled one fails at start-up (see ``oml_core/hookspecs.py`` for all).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

from oml_plugin_template.extractor import TemplateCNNConfig, create_template_cnn
from oml_plugin_template.loss import CentroidLossConfig, create_centroid_loss

if TYPE_CHECKING:
    from oml_core.engine import Engine

#: Written into the run directory by ``oml_epoch_end``: one JSON line per finished epoch.
EPOCH_LOG_NAME = "template_epochs.jsonl"


# ---------------------------------------------------------------------------------------------- components
@hookimpl
def oml_register_extractors(registry: Any) -> None:
    registry.add(
        "template_cnn",
        config=TemplateCNNConfig,
        factory=create_template_cnn,
        summary="a small 3-layer CNN (the plugin template's example extractor)",
        example={"feat_dim": 8, "width": 4},
    )


@hookimpl
def oml_register_losses(registry: Any) -> None:
    registry.add(
        "template_centroid",
        config=CentroidLossConfig,
        factory=create_centroid_loss,
        summary="pull to the label centroid, push centroids apart (the plugin template's example loss)",
        example={"margin": 1.0},
    )


# ---------------------------------------------------------------------------------------------- engine hook
@hookimpl
def oml_epoch_end(engine: Engine) -> None:
    """After every finished epoch, append ``{"epoch", "step", "last_loss", "metrics"}`` to the run directory's
    ``template_epochs.jsonl`` (rank 0 only; nothing when the engine has no run directory)."""
    state = engine.state
    if engine.run_dir is None or not state.is_main_process:
        return
    metrics = {name: float(value) for name, value in state.metrics.items()}
    record = {"epoch": state.epoch, "step": state.step, "last_loss": state.last_loss, "metrics": metrics}
    engine.run_dir.mkdir(parents=True, exist_ok=True)
    with open(engine.run_dir / EPOCH_LOG_NAME, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
