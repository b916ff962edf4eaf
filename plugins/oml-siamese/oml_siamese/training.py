"""Training a pairwise re-ranker with the engine: ``oml train-postprocessor CONFIG.yaml``.

The retrieval model (``extractor``) is frozen: it embeds the training and validation images once. Training batches
carry those ``embeddings``; a pair miner forms pairs from them, the pairwise model scores the image pairs and
``BCEWithLogitsLoss`` learns "is this pair negative" (``PairwiseTrainStep``, a plugin on ``oml_train_step``).
Validation (``RerankValidation``) reports the metrics of the embeddings alone (``embeddings/...``) and after
re-ranking each query's ``top_n`` with the model being trained (the plain names, e.g. ``OVERALL/cmc/1``, which
best-checkpoint selection monitors).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import torch
from torch import Tensor

from oml_core import hookimpl
from oml_core.config import dump_yaml
from oml_core.engine import EngineOptions, StepOutput, flatten_metrics
from oml_core.engine.builtins import NonFiniteLossError, backward_and_step
from oml_core.errors import OMLError
from oml_core.files import atomic_write_text
from oml_core.host import Host
from oml_core.pipelines.configs import CheckpointConfig, DataConfig, PluginsConfig
from oml_core.registry import (
    CallbackChoice,
    ExtractorChoice,
    LoggerChoice,
    MinerChoice,
    OptimizerChoice,
    PairwiseModelChoice,
    SamplerChoice,
    SchedulerChoice,
)
from oml_siamese.models import model_input_kind
from oml_siamese.postprocessors import PairwiseReranker

if TYPE_CHECKING:
    from oml_core.engine import Engine

PIPELINE_NAME = "train_postprocessor"


# ================================================================================================ configs
def _at_least_one(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class RerankValidationConfig:
    """When to validate and which metrics to compute, for the embeddings alone and after re-ranking."""

    every_n_epochs: int = 1
    before_training: bool = True
    batch_size: int = 64
    cmc_top_k: tuple[int, ...] = (1, 5)
    precision_top_k: tuple[int, ...] = (5,)
    map_top_k: tuple[int, ...] = (5,)
    metric: Literal["euclidean", "cosine", "dot"] = "euclidean"


@attrs.frozen(kw_only=True)
class TrainPostprocessorConfig:
    """``oml train-postprocessor``: train a pairwise model to re-rank the ``top_n`` results of a frozen extractor.

    ``extractor`` (with ``extractor_checkpoint``, e.g. the ``best.pt`` of an ``oml train`` run) is the retrieval model;
    ``pairwise_model`` is trained on pairs that ``miner`` picks from the extractor's embeddings in each batch.
    """

    pipeline: Literal["train_postprocessor"] = "train_postprocessor"
    name: str = "postprocessor"
    seed: int = 42
    epochs: int = 3
    device: str = "auto"
    run_dir: Path = Path("runs")
    data: DataConfig
    extractor: ExtractorChoice
    extractor_checkpoint: Path | None = None
    pairwise_model: PairwiseModelChoice
    miner: MinerChoice = MinerChoice("pairs")
    sampler: SamplerChoice
    top_n: int = attrs.field(default=5, validator=_at_least_one)
    optimizer: OptimizerChoice = OptimizerChoice("adam")
    scheduler: SchedulerChoice | None = None
    callbacks: tuple[CallbackChoice, ...] = ()
    validation: RerankValidationConfig = RerankValidationConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    loggers: tuple[LoggerChoice, ...] = (LoggerChoice("csv"),)
    progress_bar: bool = True
    log_every_n_steps: int = 1
    grad_clip_norm: float | None = None
    accumulate_grad_batches: int = 1
    amp: bool = True
    plugins: PluginsConfig = PluginsConfig()


def load_config(host: Host, path: str | Path, overrides: list[str] | None = None) -> TrainPostprocessorConfig:
    """Read a ``train_postprocessor`` config file (YAML), apply ``--set`` overrides, check it strictly.

    Example:
        >>> cfg = load_config(Host(), "configs/train_postprocessor_mock.yaml", ["epochs=1"])   # doctest: +SKIP
    """
    from oml_core.pipelines import load_pipeline_config

    cfg: TrainPostprocessorConfig = load_pipeline_config(host, path, pipeline=PIPELINE_NAME, overrides=overrides)
    return cfg


# ================================================================================================ engine plugins
class PairwiseTrainStep:
    """The training step of a pairwise model (replaces the engine's default step for this engine only).

    Per batch: ``miner.sample(features=batch["embeddings"], labels=batch["labels"])`` gives pairs,
    ``model(x1=images[ids1], x2=images[ids2])`` their logits (embeddings instead of images for a model on
    embeddings), ``criterion(logits, is_negative.float())`` the loss; then backward, gradient accumulation and
    clipping and the optimizer step, as the default step does. Logs the number of pairs, the share of negative ones
    and the pair accuracy.
    """

    def __init__(self, miner: Any, embeddings_key: str = "embeddings") -> None:
        self.miner = miner
        self.embeddings_key = embeddings_key

    @hookimpl(tryfirst=True)
    def oml_train_step(self, engine: Engine, batch: dict[str, Any]) -> StepOutput:
        options, state = engine.options, engine.state
        if self.embeddings_key not in batch:
            raise OMLError(
                f"pairwise training needs the retrieval model's {self.embeddings_key!r} in each batch "
                "(DatasetWithLabels(..., extra_data={'embeddings': ...}))"
            )
        engine.training_model.train()
        # a model on embeddings (LinearSiamese) learns from the embeddings themselves, one on images from the images
        key = self.embeddings_key if model_input_kind(engine.model) == "embeddings" else "input_tensors"
        inputs = torch.as_tensor(batch[key]).to(engine.device, non_blocking=True)
        ids1, ids2, is_negative = self.miner.sample(features=batch[self.embeddings_key], labels=batch["labels"])
        ids1, ids2 = ids1.to(engine.device), ids2.to(engine.device)
        target = is_negative.to(engine.device).float()
        use_amp = options.amp and engine.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.autocast(device_type=engine.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = engine.training_model(x1=inputs[ids1], x2=inputs[ids2])
        loss = engine.criterion(logits.float(), target)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the pairwise loss is {loss.item()} at epoch {state.epoch + 1}, step {state.step + 1}; the run stops here "
                "and the last checkpoint written before is kept. Lower the learning rate or set grad_clip_norm."
            )
        backward_and_step(engine, loss)
        with torch.no_grad():
            accuracy = ((logits.float() > 0) == (target > 0.5)).float().mean()
        logs = {"pairs": float(len(ids1)), "negative_share": float(target.mean()), "pair_accuracy": float(accuracy)}
        return StepOutput(loss=loss.detach(), logs=logs)


class _OnDataset:
    """Hands a fixed dataset to a postprocessor, whatever ``EmbeddingMetrics`` passes (it accumulates no images)."""

    def __init__(self, postprocessor: PairwiseReranker, dataset: Any) -> None:
        self.postprocessor, self.dataset = postprocessor, dataset

    @property
    def top_n(self) -> int:
        return self.postprocessor.top_n

    def process(self, results: Any, dataset: Any = None) -> Any:
        return self.postprocessor.process(results, self.dataset)


class RerankValidation:
    """Engine plugin implementing ``oml_validate``: the metrics after re-ranking each query's ``top_n`` with
    ``engine.model``, plus (under ``embeddings``, computed once) those of the embeddings alone, so that
    ``state.metrics`` holds both (``OVERALL/cmc/1``, ``embeddings/OVERALL/cmc/1``). When to validate, recording,
    logging and best-checkpoint selection are the engine's built-ins, as for any validation."""

    def __init__(
        self,
        dataset: Any,
        embeddings: Tensor,
        *,
        top_n: int,
        metric_args: dict[str, Any] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> None:
        if len(embeddings) != len(dataset):
            raise OMLError(f"RerankValidation: {len(embeddings)} embeddings for a dataset of {len(dataset)} items")
        self.dataset, self.embeddings = dataset, embeddings
        self.top_n, self.metric_args = top_n, dict(metric_args or {})
        self.batch_size, self.num_workers = batch_size, num_workers
        self.embedding_metrics: dict[str, Any] | None = None

    def _compute(self, postprocessor: Any) -> dict[str, Any]:
        from oml_core.engine.validation import validation_columns
        from oml_core.retrieval import EmbeddingMetrics

        columns = validation_columns(self.dataset)
        args = dict(self.metric_args)
        args.setdefault("categories_key", "categories" if "categories" in columns else None)
        args.setdefault("sequence_key", "sequence" if "sequence" in columns else None)
        args.setdefault("pcf_variance", ())
        metric = EmbeddingMetrics(**args, postprocessor=postprocessor)
        metric.setup(num_samples=len(self.embeddings))
        metric.update_data({"embeddings": self.embeddings.float().cpu(), **columns})
        return metric.compute_metrics()

    @hookimpl
    def oml_validate(self, engine: Engine) -> dict[str, Any]:
        if self.embedding_metrics is None:
            self.embedding_metrics = self._compute(None)
        reranker = PairwiseReranker(
            self.top_n, engine.model, num_workers=self.num_workers, batch_size=self.batch_size, device=engine.device
        )
        metrics = self._compute(_OnDataset(reranker, self.dataset))
        if engine.state.is_main_process:
            from tqdm import tqdm

            flat, baseline = flatten_metrics(metrics), flatten_metrics(self.embedding_metrics)
            when = "before training" if engine.state.step == 0 else f"epoch {engine.state.epoch}"
            cmc = [k for k in flat if k.startswith("OVERALL/cmc/")]
            shown = "  ".join(f"{k.replace('/', '@')}: {baseline[k]:.4f} -> {flat[k]:.4f}" for k in cmc)
            tqdm.write(f"validation {when} (embeddings -> re-ranked top {self.top_n}): {shown}", file=sys.stderr)
        return {**metrics, "embeddings": self.embedding_metrics}


# ================================================================================================ the pipeline
@attrs.frozen
class PostprocessorTrainResult:
    """What ``train_postprocessor`` returns: flat metrics of the embeddings alone, after re-ranking with the
    untrained model (when validated before training) and with the final model."""

    run_dir: Path
    status: str
    metrics_embeddings: dict[str, float]
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    epochs: int
    steps: int


def _split_metrics(row: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    reranked = {k: v for k, v in row.items() if k not in ("epoch", "step") and not k.startswith("embeddings/")}
    embeddings = {k.removeprefix("embeddings/"): v for k, v in row.items() if k.startswith("embeddings/")}
    return reranked, embeddings


def build_engine(
    cfg: TrainPostprocessorConfig, host: Host, run_dir: Path | None, *, hparams: dict[str, Any] | None = None
) -> Any:
    """Every component of ``cfg`` (through the registries), the embeddings of the frozen extractor, and the Engine
    with ``PairwiseTrainStep`` and ``RerankValidation``."""
    from oml_core.data import DatasetQueryGallery, DatasetWithLabels, read_dataframe
    from oml_core.data.const import SPLIT_COLUMN, TRAIN_SPLIT, VALIDATION_SPLIT
    from oml_core.engine import Engine, seed_everything
    from oml_core.engine.builtins import MetricLogging
    from oml_core.inference import inference
    from oml_core.pipelines.train import build_callbacks, build_optimizer, build_scheduler, build_transforms, load_model_weights

    seed_everything(cfg.seed)
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    data = cfg.data
    df = read_dataframe(data.dataframe)
    if SPLIT_COLUMN not in df.columns:
        raise OMLError(f"{data.dataframe}: the dataframe needs a '{SPLIT_COLUMN}' column with train/validation rows")
    df_train = df[df[SPLIT_COLUMN] == TRAIN_SPLIT].reset_index(drop=True)
    df_val = df[df[SPLIT_COLUMN] == VALIDATION_SPLIT].reset_index(drop=True)
    if not len(df_train) or not len(df_val):
        raise OMLError(f"{data.dataframe}: training a re-ranker needs both '{TRAIN_SPLIT}' and '{VALIDATION_SPLIT}' rows")
    common: dict[str, Any] = {"dataset_root": data.dataset_root, "cache_size": data.cache_size}
    transform_val = build_transforms(host, data.transforms_val, data.im_size, train=False)

    extractor = host.registries.extractors.create(cfg.extractor)
    if cfg.extractor_checkpoint is not None:
        load_model_weights(extractor, cfg.extractor_checkpoint)
    emb_train, emb_val = (
        inference(
            extractor,
            DatasetWithLabels(frame, transform=transform_val, **common),
            batch_size=cfg.validation.batch_size,
            num_workers=data.num_workers,
            device=device,
            progress=cfg.progress_bar,
        )
        for frame in (df_train, df_val)
    )
    extractor.cpu()  # it is not needed any more; free the accelerator for the pairwise model

    train_dataset = DatasetWithLabels(
        df_train,
        transform=build_transforms(host, data.transforms_train, data.im_size, train=True),
        extra_data={"embeddings": emb_train},
        **common,
    )
    val_dataset = DatasetQueryGallery(df_val, transform=transform_val, extra_data={"embeddings": emb_val}, **common)
    pairwise_model = host.registries.pairwise_models.create(cfg.pairwise_model)
    if not isinstance(pairwise_model, torch.nn.Module):
        raise OMLError(f"pairwise model {cfg.pairwise_model.type!r} is not an nn.Module, so it cannot be trained")
    miner = host.registries.miners.create(cfg.miner)
    sampler = host.registries.samplers.create_in_context(
        cfg.sampler, labels=train_dataset.get_labels(), label2category=train_dataset.get_label2category(), seed=cfg.seed
    )
    optimizer = build_optimizer(host, cfg.optimizer, {"head": pairwise_model})
    scheduler = build_scheduler(host, cfg.scheduler, optimizer, cfg.epochs, len(sampler))
    loggers = [host.registries.loggers.create(choice, run_dir=run_dir) for choice in cfg.loggers] if run_dir else []
    v = cfg.validation
    validation = RerankValidation(
        val_dataset,
        emb_val,
        top_n=cfg.top_n,
        metric_args={
            "cmc_top_k": v.cmc_top_k,
            "precision_top_k": v.precision_top_k,
            "map_top_k": v.map_top_k,
            "metric": v.metric,
        },
        batch_size=v.batch_size,
        num_workers=data.num_workers,
    )
    options = EngineOptions(
        max_epochs=cfg.epochs,
        seed=cfg.seed,
        device=str(device),
        grad_clip_norm=cfg.grad_clip_norm,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        amp=cfg.amp,
        validate_every_n_epochs=v.every_n_epochs,
        validate_before_training=v.before_training,
        num_workers=data.num_workers,
        progress_bar=cfg.progress_bar,
        log_every_n_steps=cfg.log_every_n_steps,
        run_dir=str(run_dir) if run_dir else None,
        checkpoint_every_n_epochs=cfg.checkpoint.every_n_epochs,
        checkpoint_every_n_steps=cfg.checkpoint.every_n_steps,
        monitor=cfg.checkpoint.monitor,
        monitor_mode=cfg.checkpoint.mode,
    )
    engine = Engine(
        model=pairwise_model,
        criterion=torch.nn.BCEWithLogitsLoss(),
        optimizer=optimizer,
        scheduler=scheduler,
        train_dataset=train_dataset,
        batch_sampler=sampler,
        val_dataset=val_dataset,
        options=options,
        loggers=loggers,
        host=host,
        plugins=[PairwiseTrainStep(miner), validation, MetricLogging(hparams), *build_callbacks(host, cfg.callbacks)],
    )
    return engine


def train_postprocessor(
    config_path: str | Path, *, overrides: list[str] | None = None, host: Host | None = None
) -> PostprocessorTrainResult:
    """``oml train-postprocessor``: train the pairwise re-ranker described by a config file; the run directory gets
    the resolved config, the checkpoints of the pairwise model (``best.pt`` by re-ranked CMC@1) and ``metrics.json``.

    Example:
        >>> result = train_postprocessor("configs/train_postprocessor_mock.yaml", overrides=["epochs=1"])   # doctest: +SKIP
        >>> result.metrics_embeddings["OVERALL/cmc/1"], result.metrics_after["OVERALL/cmc/1"]   # doctest: +SKIP
    """
    from oml_core.pipelines.train import describe_environment, new_run_dir_path, register_local_plugins

    host = host if host is not None else Host()
    cfg = load_config(host, config_path, overrides)
    base_dir = Path(config_path).resolve().parent
    register_local_plugins(host, cfg.plugins.local, base_dir)
    unstructured = host.registries.converter.unstructure(cfg)
    run_dir = new_run_dir_path(cfg, kind="postprocessor")  # created by the first file written, once all was built
    engine = build_engine(cfg, host, run_dir, hparams=unstructured)
    dump_yaml(unstructured, run_dir / "config.yaml")
    atomic_write_text(run_dir / "environment.json", json.dumps(describe_environment(host), indent=2))
    print(f"oml: run directory {run_dir}", file=sys.stderr)
    try:
        state = engine.fit()
    finally:
        engine.close()
    history = state.history
    before, embeddings = _split_metrics(history[0]) if history and history[0]["step"] == 0 else ({}, {})
    after, last_embeddings = _split_metrics(history[-1]) if history else ({}, {})
    status = "interrupted" if state.interrupted else "stopped" if state.stop_requested else "completed"
    result = PostprocessorTrainResult(run_dir, status, embeddings or last_embeddings, before, after, state.epoch, state.step)
    summary = {"status": status, "epochs": state.epoch, "steps": state.step, "embeddings": result.metrics_embeddings,
               "before": before, "after": after, "history": history}  # fmt: skip
    atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=2))
    return result


__all__ = [
    "PIPELINE_NAME",
    "PairwiseTrainStep",
    "PostprocessorTrainResult",
    "RerankValidation",
    "RerankValidationConfig",
    "TrainPostprocessorConfig",
    "build_engine",
    "load_config",
    "train_postprocessor",
]
