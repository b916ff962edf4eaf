"""Config classes of the pipelines. Every class is frozen and keyword-only; YAML keys are the field names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from oml_core.registry import ExtractorChoice, LossChoice, SamplerChoice, TransformChoice


@attrs.frozen(kw_only=True)
class DataConfig:
    """Where the data is: a dataframe in OML's format (CSV or parquet) and the folder its paths are relative to."""

    dataframe: Path
    dataset_root: Path | None = None
    transforms_train: tuple[TransformChoice, ...] = ()
    transforms_val: tuple[TransformChoice, ...] = ()
    num_workers: int = 0
    cache_size: int = 0


@attrs.frozen(kw_only=True)
class OptimizerConfig:
    type: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9


@attrs.frozen(kw_only=True)
class PluginsConfig:
    """Plugins for this run only: ``local`` lists Python files or importable modules with ``@hookimpl`` functions."""

    local: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class TrainConfig:
    """``oml train``: fit an extractor with a metric-learning loss and validate it on retrieval metrics."""

    pipeline: Literal["train"] = "train"
    seed: int = 42
    epochs: int = 3
    run_dir: Path = Path("runs")
    data: DataConfig
    extractor: ExtractorChoice
    criterion: LossChoice
    sampler: SamplerChoice
    optimizer: OptimizerConfig = OptimizerConfig()
    plugins: PluginsConfig = PluginsConfig()


PIPELINE_CONFIGS: dict[str, type] = {"train": TrainConfig}
