"""Config classes of the pipelines. Every class is frozen and keyword-only; YAML keys are the field names.

``oml train``, ``oml validate`` and ``oml predict`` all read a :class:`TrainConfig` file (validate and predict use its
data, extractor and validation sections), so one file describes one experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import attrs

from oml_core.config import field_error
from oml_core.registry import (
    CallbackChoice,
    ExtractorChoice,
    LoggerChoice,
    LossChoice,
    ModalityChoice,
    OptimizerChoice,
    SamplerChoice,
    SchedulerChoice,
    TransformChoice,
)


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 1:
        raise field_error(attribute, f"{attribute.name} must be >= 1, got {value}")


def _run_name(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    """A run name becomes a folder name inside ``run_dir``: no path separators, no ``.`` or ``..``."""
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        why = "must be a plain folder name (no '/', no '..'): the run directory stays inside run_dir"
        raise field_error(attribute, f"name {value!r} {why}")


def _device(instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``: anything else fails before a run directory exists."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
        raise field_error(attribute, f"device {value!r} is not one of auto, cpu, cuda, cuda:N, mps")


@attrs.frozen(kw_only=True)
class DataConfig:
    """Where the data is: a dataframe in OML's format (CSV or parquet) and the folder its paths are relative to.

    Empty ``transforms_*`` mean: resize to ``im_size`` and normalise (training adds light augmentations).
    Image paths must stay inside ``dataset_root`` (also through symbolic links) unless ``allow_outside_root``.
    With a ``modality`` (rows of texts or audio files, from the oml-text / oml-audio plugins, e.g.
    ``{type: text, tokenizer: DIR}``) the image options are unused.
    """

    dataframe: Path
    dataset_root: Path | None = None
    im_size: int = 224
    transforms_train: tuple[TransformChoice, ...] = ()
    transforms_val: tuple[TransformChoice, ...] = ()
    num_workers: int = 0
    cache_size: int = 0
    skip_unreadable: bool = False
    allow_outside_root: bool = False
    modality: ModalityChoice | None = None


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
    name: str = attrs.field(default="run", validator=_run_name)
    seed: int = 42
    epochs: int = attrs.field(default=3, validator=_at_least_one)
    device: str = attrs.field(default="auto", validator=_device)
    run_dir: Path = Path("runs")
    data: DataConfig
    extractor: ExtractorChoice
    criterion: LossChoice
    sampler: SamplerChoice
    optimizer: OptimizerChoice = OptimizerChoice("adam")
    scheduler: SchedulerChoice | None = None
    callbacks: tuple[CallbackChoice, ...] = ()
    validation: ValidationConfig = ValidationConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    early_stopping_patience: int | None = None
    loggers: tuple[LoggerChoice, ...] = (LoggerChoice("csv"),)
    progress_bar: bool = True
    log_every_n_steps: int = 1
    grad_clip_norm: float | None = None
    accumulate_grad_batches: int = attrs.field(default=1, validator=_at_least_one)
    amp: bool = True
    plugins: PluginsConfig = PluginsConfig()

