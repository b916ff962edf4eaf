"""Config classes of the pipelines. Every class is frozen and keyword-only; YAML keys are the field names.

``oml train``, ``oml validate`` and ``oml predict`` all read a :class:`TrainConfig` file (validate and predict use its
data, extractor and validation sections), so one file describes one experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import attrs

from oml_core.registry import ExtractorChoice, LoggerChoice, LossChoice, ModalityChoice, SamplerChoice, TransformChoice


@attrs.frozen(kw_only=True)
class DataConfig:
    """Where the data is: a dataframe in OML's format (CSV or parquet) and the folder its paths are relative to.

    Empty ``transforms_*`` mean: resize to ``im_size`` and normalise (training adds light augmentations).
    ``modality`` (e.g. ``{type: text, tokenizer: DIR}``, from the oml-text / oml-audio plugins) reads rows that are
    not images; the image options are then unused.
    """

    dataframe: Path
    dataset_root: Path | None = None
    im_size: int = 224
    transforms_train: tuple[TransformChoice, ...] = ()
    transforms_val: tuple[TransformChoice, ...] = ()
    num_workers: int = 0
    cache_size: int = 0
    skip_unreadable: bool = False
    modality: ModalityChoice | None = None


@attrs.frozen(kw_only=True)
class OptimizerConfig:
    type: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    momentum: float = 0.9


@attrs.frozen(kw_only=True)
class SchedulerConfig:
    """Learning-rate schedule: ``cosine`` (to ``eta_min`` over the run), ``step`` or ``multistep`` (times ``gamma``)."""

    type: Literal["cosine", "step", "multistep"] = "cosine"
    interval: Literal["epoch", "step"] = "epoch"
    eta_min: float = 0.0
    step_size: int = 10
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1


@attrs.frozen(kw_only=True)
class ValidationConfig:
    """When to validate and which metrics to compute (the keyword arguments of EmbeddingMetrics)."""

    every_n_epochs: int = 1
    before_training: bool = True
    batch_size: int = 64
    cmc_top_k: tuple[int, ...] = (1, 5)
    precision_top_k: tuple[int, ...] = (5,)
    map_top_k: tuple[int, ...] = (5,)
    fmr_vals: tuple[float, ...] = ()
    pcf_variance: tuple[float, ...] = ()
    metric: Literal["euclidean", "cosine", "dot"] = "euclidean"


@attrs.frozen(kw_only=True)
class CheckpointConfig:
    """``last.pt`` every N epochs (and/or steps); ``best.pt`` by ``monitor`` (a flat metric name)."""

    every_n_epochs: int = 1
    every_n_steps: int | None = None
    monitor: str | None = "OVERALL/cmc/1"
    mode: Literal["max", "min"] = "max"


@attrs.frozen(kw_only=True)
class PluginsConfig:
    """Plugins for this run only: ``local`` lists Python files (relative to the config file) or importable modules
    with ``@hookimpl`` functions."""

    local: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class TrainConfig:
    """``oml train``: fit an extractor with a metric-learning loss and validate it on retrieval metrics."""

    pipeline: Literal["train"] = "train"
    name: str = "run"
    seed: int = 42
    epochs: int = 3
    device: str = "auto"
    run_dir: Path = Path("runs")
    data: DataConfig
    extractor: ExtractorChoice
    criterion: LossChoice
    sampler: SamplerChoice
    optimizer: OptimizerConfig = OptimizerConfig()
    scheduler: SchedulerConfig | None = None
    validation: ValidationConfig = ValidationConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    early_stopping_patience: int | None = None
    loggers: tuple[LoggerChoice, ...] = (LoggerChoice("csv"),)
    progress_bar: bool = True
    log_every_n_steps: int = 1
    grad_clip_norm: float | None = None
    accumulate_grad_batches: int = 1
    amp: bool = True
    plugins: PluginsConfig = PluginsConfig()

