"""What the Lightning classes do, written once for both Lightning packages.

``lightning.pytorch`` and the older ``pytorch_lightning`` define separate class hierarchies (a ``pytorch_lightning``
Trainer refuses a ``lightning.pytorch`` module), so the behaviour lives in plain mixins here and
``oml_lightning/__init__.py`` / ``oml_lightning/pytorch_lightning.py`` combine them with each package's
``LightningModule`` and ``Callback``. The mixins only use what both packages share.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, DistributedSampler

from oml_core.data.const import EMBEDDINGS_KEY, INPUT_TENSORS_KEY, LABELS_KEY
from oml_core.engine import flatten_metrics
from oml_core.errors import OMLError

SCHEDULER_INTERVALS = ("step", "epoch")


class LightningAdapterError(OMLError, ValueError):
    """A Lightning module or callback of OML was given arguments it cannot work with."""


# ================================================================================================ modules
class _OptimizationMixin:
    """Optimizer / scheduler wiring and epoch-wise freezing shared by the extractor and pairwise modules."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None
    scheduler: Any
    scheduler_interval: str
    scheduler_frequency: int
    monitor_metric: str | None
    freeze_n_epochs: int

    def _init_optimization(
        self,
        optimizer: torch.optim.Optimizer | None,
        scheduler: Any,
        scheduler_interval: str,
        scheduler_frequency: int,
        scheduler_monitor_metric: str | None,
        freeze_n_epochs: int,
    ) -> None:
        who = type(self).__name__
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise LightningAdapterError(f"{who}: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}")
        if isinstance(scheduler, ReduceLROnPlateau) and not scheduler_monitor_metric:
            raise LightningAdapterError(
                f"{who}: ReduceLROnPlateau needs the metric it watches: pass scheduler_monitor_metric='OVERALL/cmc/1' "
                "(a name that MetricValCallback logs)"
            )
        if freeze_n_epochs < 0:
            raise LightningAdapterError(f"{who}: freeze_n_epochs must be >= 0, got {freeze_n_epochs}")
        freezable = callable(getattr(self.model, "freeze", None)) and callable(getattr(self.model, "unfreeze", None))
        if freeze_n_epochs and not freezable:
            raise LightningAdapterError(
                f"{who}: freeze_n_epochs={freeze_n_epochs} needs a model with freeze() and unfreeze() methods; "
                f"{type(self.model).__name__} has none"
            )
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_frequency = scheduler_frequency
        self.monitor_metric = scheduler_monitor_metric
        self.freeze_n_epochs = freeze_n_epochs

    def configure_optimizers(self) -> Any:
        if self.optimizer is None:
            raise LightningAdapterError(
                f"{type(self).__name__} has no optimizer to train with: pass one, e.g. "
                f"{type(self).__name__}(model, criterion, torch.optim.Adam(model.parameters(), lr=1e-4))"
            )
        if self.scheduler is None:
            return self.optimizer
        scheduler: dict[str, Any] = {
            "scheduler": self.scheduler,
            "interval": self.scheduler_interval,
            "frequency": self.scheduler_frequency,
        }
        if isinstance(self.scheduler, ReduceLROnPlateau):
            scheduler["monitor"] = self.monitor_metric
        return [self.optimizer], [scheduler]

    def on_train_epoch_start(self) -> None:
        if self.freeze_n_epochs:
            current_epoch: int = self.current_epoch  # type: ignore[attr-defined]
            if current_epoch >= self.freeze_n_epochs:
                self.model.unfreeze()  # type: ignore[operator]
            else:
                self.model.freeze()  # type: ignore[operator]

    def _log_lr(self, batch_size: int) -> None:
        if self.scheduler is not None and hasattr(self.scheduler, "get_last_lr"):
            lr = float(self.scheduler.get_last_lr()[0])
            self.log("lr", lr, prog_bar=True, batch_size=batch_size, on_step=True, on_epoch=False)  # type: ignore[attr-defined]


class ExtractorLogic(_OptimizationMixin):
    """Trains an extractor with a metric-learning criterion; validation returns the batch plus its embeddings.

    Arguments (OML's): ``extractor`` (images ``(B, C, H, W)`` → embeddings), ``criterion(embeddings, labels)``,
    ``optimizer``, ``scheduler`` (stepped every ``scheduler_interval`` — ``"step"`` or ``"epoch"`` — times
    ``scheduler_frequency``), batch keys, ``scheduler_monitor_metric`` (for ``ReduceLROnPlateau``) and
    ``freeze_n_epochs`` (the extractor's ``freeze()`` for the first epochs, then ``unfreeze()``).

    The extractor is ``self.model``, so checkpoints hold its weights under ``model.`` (as OML's do).
    """

    def __init__(
        self,
        extractor: nn.Module,
        criterion: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "step",
        scheduler_frequency: int = 1,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        embeddings_key: str = EMBEDDINGS_KEY,
        scheduler_monitor_metric: str | None = None,
        freeze_n_epochs: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(extractor, nn.Module):
            raise LightningAdapterError(f"{type(self).__name__}: extractor must be an nn.Module, got {type(extractor).__name__}")
        self.model = extractor
        self.criterion = criterion
        self.input_tensors_key = input_tensors_key
        self.labels_key = labels_key
        self.embeddings_key = embeddings_key
        self._init_optimization(
            optimizer, scheduler, scheduler_interval, scheduler_frequency, scheduler_monitor_metric, freeze_n_epochs
        )

    @property
    def extractor(self) -> nn.Module:
        return self.model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)  # type: ignore[no-any-return]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.criterion is None:
            raise LightningAdapterError(
                f"{type(self).__name__} has no criterion to train with: pass one, e.g. "
                f"{type(self).__name__}(model, TripletLossWithMiner(margin=0.1), optimizer)"
            )
        embeddings = self.model(_get(batch, self.input_tensors_key, type(self).__name__))
        loss = self.criterion(embeddings, _get(batch, self.labels_key, type(self).__name__))
        size = len(embeddings)
        loss_name = (getattr(self.criterion, "criterion_name", "") + "_loss").strip("_")
        # sync_dist: under DDP the epoch value is the mean over every rank's batches
        self.log(loss_name, loss.detach(), prog_bar=True, batch_size=size, on_step=True, on_epoch=True, sync_dist=True)  # type: ignore[attr-defined]
        logs = getattr(self.criterion, "last_logs", None)
        if logs:
            self.log_dict({k: float(v) for k, v in logs.items()}, batch_size=size, on_step=True, on_epoch=False)  # type: ignore[attr-defined]
        self._log_lr(size)
        return loss  # type: ignore[no-any-return]

    def validation_step(self, batch: dict[str, Any], batch_idx: int, *_: Any) -> dict[str, Any]:
        embeddings = self.model(_get(batch, self.input_tensors_key, type(self).__name__))
        return {**batch, self.embeddings_key: embeddings}

    def predict_step(self, batch: dict[str, Any], batch_idx: int, *_: Any) -> dict[str, Any]:
        return self.validation_step(batch, batch_idx)


class PairwiseLogic(_OptimizationMixin):
    """Trains a pairwise re-ranker on pairs mined from precomputed embeddings (OML's ``PairwiseModule``).

    Each training batch carries ``input_tensors`` and ``labels`` (as any batch) and ``embeddings`` (precomputed by
    the first-stage extractor, e.g. given to the dataset as ``extra_data={"embeddings": ...}``). ``pairs_miner``
    picks pairs from the embeddings (``PairsMiner(hard_mining=True)``), the pairwise model scores each pair of
    inputs, and ``criterion(scores, is_negative)`` trains it (``BCEWithLogitsLoss`` when not given): a higher score
    means "more different". Validation returns the batch as it is: ``MetricValCallback(EmbeddingMetrics(
    postprocessor=<a re-ranker holding the same pairwise model>))`` computes the metrics after re-ranking.
    """

    def __init__(
        self,
        pairwise_model: nn.Module,
        pairs_miner: Any,
        criterion: Any = None,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any = None,
        scheduler_interval: str = "step",
        scheduler_frequency: int = 1,
        input_tensors_key: str = INPUT_TENSORS_KEY,
        labels_key: str = LABELS_KEY,
        embeddings_key: str = EMBEDDINGS_KEY,
        scheduler_monitor_metric: str | None = None,
        freeze_n_epochs: int = 0,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        if not isinstance(pairwise_model, nn.Module):
            raise LightningAdapterError(f"{who}: pairwise_model must be a torch.nn.Module, got {type(pairwise_model).__name__}")
        if not callable(getattr(pairs_miner, "sample", None)):
            raise LightningAdapterError(f"{who}: pairs_miner needs sample(features, labels), e.g. PairsMiner(hard_mining=True)")
        self.model = pairwise_model
        self.miner = pairs_miner
        self.criterion = criterion if criterion is not None else nn.BCEWithLogitsLoss()
        self.input_tensors_key = input_tensors_key
        self.labels_key = labels_key
        self.embeddings_key = embeddings_key
        self._init_optimization(
            optimizer, scheduler, scheduler_interval, scheduler_frequency, scheduler_monitor_metric, freeze_n_epochs
        )

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.model(x1, x2)  # type: ignore[no-any-return]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        who = type(self).__name__
        labels = _get(batch, self.labels_key, who)
        ids1, ids2, is_negative = self.miner.sample(features=_get(batch, self.embeddings_key, who), labels=labels)
        inputs = _get(batch, self.input_tensors_key, who)
        scores = self.model(inputs[ids1], inputs[ids2])
        loss = self.criterion(scores, is_negative.to(scores.device, scores.dtype))
        size = len(labels)
        self.log("loss", loss.detach(), prog_bar=True, batch_size=size, on_step=True, on_epoch=True, sync_dist=True)  # type: ignore[attr-defined]
        self._log_lr(size)
        return loss  # type: ignore[no-any-return]

    def validation_step(self, batch: dict[str, Any], batch_idx: int, *_: Any) -> dict[str, Any]:
        # the batches are only accumulated: the postprocessor of the metric re-ranks when metrics are computed
        return batch


def _get(batch: Mapping[str, Any], key: str, who: str) -> Any:
    if key not in batch:
        raise LightningAdapterError(f"{who}: the batch has no {key!r}; it has {', '.join(map(str, batch)) or 'nothing'}")
    return batch[key]


# ================================================================================================ DDP loaders
class RankBatchSampler:
    """This process's share of another batch sampler's epoch: batches ``rank, rank + world_size, ...``, the epoch
    padded by repeating its first batches so that every rank gets ``ceil(len / world_size)`` batches (DDP needs
    equal step counts). With ``broadcast=True`` rank 0 draws the epoch and sends it to the other ranks, so the
    inner sampler's randomness need not agree between processes.

    Example:
        >>> list(RankBatchSampler([[0, 1], [2, 3], [4, 5]], rank=1, world_size=2))
        [[2, 3], [0, 1]]
    """

    def __init__(self, batch_sampler: Any, rank: int, world_size: int, *, broadcast: bool = False) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise LightningAdapterError(f"RankBatchSampler(rank={rank}, world_size={world_size}): need 0 <= rank < world_size")
        self.batch_sampler = batch_sampler
        self.rank, self.world_size, self.broadcast = rank, world_size, broadcast

    def __len__(self) -> int:
        return math.ceil(len(self.batch_sampler) / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        if callable(getattr(self.batch_sampler, "set_epoch", None)):
            self.batch_sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        batches = [list(map(int, b)) for b in self.batch_sampler] if not self.broadcast or self.rank == 0 else None
        if self.broadcast and self.world_size > 1 and dist.is_available() and dist.is_initialized():
            box = [batches]
            dist.broadcast_object_list(box, src=0)
            batches = box[0]
        if batches is None:
            raise LightningAdapterError("RankBatchSampler(broadcast=True) on a rank > 0 needs an initialised torch.distributed")
        if not batches:
            return iter([])
        total = len(self) * self.world_size
        padded = [batches[i % len(batches)] for i in range(total)]
        return iter(padded[self.rank :: self.world_size])


def loader_for_rank(loader: DataLoader[Any], rank: int, world_size: int, *, train: bool) -> DataLoader[Any]:
    """``loader`` rebuilt to give this process its share: a custom batch sampler (OML's ``BalanceSampler``...) is
    wrapped in :class:`RankBatchSampler` (drawn on rank 0 for training); a plain loader gets a ``DistributedSampler``
    (padded, which ``EmbeddingMetrics`` undoes by ``idx``)."""
    if world_size == 1 or not isinstance(loader, DataLoader):
        return loader
    common: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "worker_init_fn": loader.worker_init_fn,
        "persistent_workers": loader.persistent_workers if loader.num_workers > 0 else False,
        "timeout": loader.timeout,
    }
    batch_sampler = loader.batch_sampler
    plain = type(batch_sampler) is torch.utils.data.BatchSampler
    if batch_sampler is not None and not plain:
        if getattr(batch_sampler, "world_size", 1) > 1:  # already split across ranks by its own means
            return loader
        wrapped = RankBatchSampler(batch_sampler, rank, world_size, broadcast=train)
        return DataLoader(loader.dataset, batch_sampler=wrapped, **common)
    shuffle = train and isinstance(loader.sampler, torch.utils.data.RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, drop_last=False)
    batch_size = loader.batch_size if loader.batch_size is not None else 1
    return DataLoader(loader.dataset, batch_size=batch_size, sampler=sampler, drop_last=loader.drop_last and train, **common)


class DDPLoadersLogic:
    """OML's ``ModuleDDP``: holds the loaders and hands each process its share from ``train_dataloader()`` /
    ``val_dataloader()``. Use ``trainer.fit(module)`` (loaders given to ``fit`` would bypass this) and
    ``pl.Trainer(..., use_distributed_sampler=False)``."""

    def __init__(self, *args: Any, loaders_train: Any = None, loaders_val: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if loaders_train is None and loaders_val is None:
            raise LightningAdapterError(f"{type(self).__name__}: give loaders_train and/or loaders_val")
        self.loaders_train = loaders_train
        self.loaders_val = loaders_val

    def setup(self, stage: str) -> None:
        trainer = self.trainer  # type: ignore[attr-defined]
        connector = getattr(trainer, "_accelerator_connector", None)
        if trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", False):
            raise LightningAdapterError(
                f"{type(self).__name__} splits its loaders across processes itself: create the trainer with "
                "pl.Trainer(..., use_distributed_sampler=False)"
            )

    def _for_rank(self, loaders: Any, train: bool) -> Any:
        trainer = self.trainer  # type: ignore[attr-defined]
        rank, world_size = trainer.global_rank, trainer.world_size
        if isinstance(loaders, DataLoader):
            return loader_for_rank(loaders, rank, world_size, train=train)
        if isinstance(loaders, list | tuple):
            return [loader_for_rank(loader, rank, world_size, train=train) for loader in loaders]
        if isinstance(loaders, dict):
            return {name: loader_for_rank(loader, rank, world_size, train=train) for name, loader in loaders.items()}
        raise LightningAdapterError(
            f"{type(self).__name__}: loaders must be a DataLoader, a list or a dict, got {type(loaders).__name__}"
        )

    def train_dataloader(self) -> Any:
        if self.loaders_train is None:
            raise LightningAdapterError(f"{type(self).__name__} was given no loaders_train")
        return self._for_rank(self.loaders_train, train=True)

    def val_dataloader(self) -> Any:
        if self.loaders_val is None:
            return []
        return self._for_rank(self.loaders_val, train=False)


# ================================================================================================ callback
class MetricValLogic:
    """Computes a retrieval metric over the whole validation set every epoch and reports it.

    ``metric`` is OML's ``EmbeddingMetrics`` (anything with ``setup(num_samples)``, ``update_data(batch)`` and
    ``compute_metrics()``); it receives every validation batch the module returns (the batch plus
    ``embeddings``). At the end of each validation epoch the metrics are computed (under DDP every rank
    contributes and every rank gets the same numbers), flattened into ``self.metric_result``
    (``{"OVERALL/cmc/1": 0.75, ...}``), added to ``self.metric_history[epoch]``, and ``self.on_epoch_end(trainer,
    pl_module)`` reports them: it logs them to the Lightning logger(s) and, with ``log_images=True``, adds figures of
    the worst queries (TensorBoard's ``add_figure``, MLflow, W&B, else PNG files under the logger's ``log_dir``).
    Override ``on_epoch_end`` to report differently, calling ``super().on_epoch_end(trainer, pl_module)`` to keep the
    default. The sanity-check validation (``num_sanity_val_steps``) sees only a few batches and is ignored.
    """

    def __init__(self, metric: Any, log_images: bool = False, loader_idx: int = 0) -> None:
        super().__init__()
        for method in ("setup", "update_data", "compute_metrics"):
            if not callable(getattr(metric, method, None)):
                raise LightningAdapterError(
                    f"MetricValCallback: metric must have setup(), update_data() and compute_metrics() (EmbeddingMetrics "
                    f"does); {type(metric).__name__} has no {method}()"
                )
        if log_images and not (callable(getattr(metric, "visualize", None)) and metric.ready_to_visualize()):
            raise LightningAdapterError(
                "MetricValCallback(log_images=True) draws the worst queries from their image paths: create the metric "
                'with EmbeddingMetrics(extra_keys=("paths",)) (the datasets put "paths" into every batch)'
            )
        self.metric = metric
        self.log_images = log_images
        self.loader_idx = loader_idx
        self.metric_result: dict[str, float] = {}
        self.metric_history: dict[int, dict[str, float]] = {}
        self.figure_paths: list[Path] = []
        self._active = False
        self._n_batches = 0

    # -------------------------------------------------------------------------------------------- accumulation
    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._active = not trainer.sanity_checking
        self._n_batches = 0
        if self._active:
            self.metric.setup(num_samples=_dataset_size(trainer.val_dataloaders, self.loader_idx))

    def on_validation_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self._active or dataloader_idx != self.loader_idx:
            return
        if not isinstance(outputs, Mapping):
            raise LightningAdapterError(
                f"MetricValCallback: validation_step of {type(pl_module).__name__} must return the batch dict with "
                f"embeddings (as ExtractorModule does), got {type(outputs).__name__}"
            )
        self.metric.update_data(dict(outputs))
        self._n_batches += 1

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._active:
            return
        self._active = False
        if self._n_batches == 0 and trainer.world_size == 1:
            return  # this loader was not run (limit_val_batches=0)
        metrics = self.metric.compute_metrics()
        self.metric_result = flatten_metrics(metrics)
        self.metric_history[int(trainer.current_epoch)] = dict(self.metric_result)
        self.on_epoch_end(trainer, pl_module)

    # -------------------------------------------------------------------------------------------- reporting
    def on_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Report ``self.metric_result``: log it (every rank logs the same values) and, with ``log_images``, draw the
        worst queries. Called once per validation epoch, after the metrics are computed."""
        if not self.metric_result:
            return
        # every rank holds the same values already: syncing them with "max" is exact (and keeps Lightning from
        # warning that epoch-level values are not synced)
        pl_module.log_dict(dict(self.metric_result), on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max")
        if self.log_images and trainer.is_global_zero:
            self._log_worst_queries(trainer)

    def _log_worst_queries(self, trainer: Any) -> None:
        import matplotlib.pyplot as plt

        figures, titles = self.metric.visualize()
        for figure, title in zip(figures, titles, strict=True):
            path = log_figure(trainer, figure, f"images/{title}", step=int(trainer.current_epoch))
            if path is not None:
                self.figure_paths.append(path)
            plt.close(figure)


def _dataset_size(loaders: Any, index: int) -> int | None:
    if isinstance(loaders, Sequence):
        loaders = loaders[index] if index < len(loaders) else None
    elif isinstance(loaders, Mapping):
        loaders = list(loaders.values())[index] if index < len(loaders) else None
    dataset = getattr(loaders, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None  # type: ignore[arg-type]
    except TypeError:  # an iterable dataset without a length
        return None


def log_figure(trainer: Any, figure: Any, name: str, step: int) -> Path | None:
    """Send a matplotlib ``figure`` to every logger of ``trainer`` that takes figures (TensorBoard, MLflow, W&B);
    when none does, save it as ``<log_dir>/<name>/epoch=<step>.png`` and return that path."""
    sent = False
    for logger in trainer.loggers:
        if hasattr(logger, "oml_logger"):  # OMLLogger: any OML logger chosen by name
            logger.log_figure(name, figure, step)
            sent = True
            continue
        experiment = getattr(logger, "experiment", None)
        if callable(getattr(experiment, "add_figure", None)):  # TensorBoard's SummaryWriter
            experiment.add_figure(name, figure, global_step=step, close=False)
            sent = True
        elif callable(getattr(experiment, "log_figure", None)) and getattr(logger, "run_id", None):  # MLflow
            experiment.log_figure(logger.run_id, figure, f"{name}/epoch={step}.png")
            sent = True
        elif callable(getattr(logger, "log_image", None)):  # Weights & Biases
            logger.log_image(key=name, images=[figure], step=step)
            sent = True
    if sent:
        return None
    path = Path(_log_dir(trainer)) / _safe_path(name) / f"epoch={step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tight-layout warnings of matplotlib say nothing useful here
        figure.savefig(path, format="png")
    return path


def _log_dir(trainer: Any) -> str:
    # not trainer.log_dir: it broadcasts between processes, and figures are drawn on rank 0 only
    for logger in trainer.loggers:
        for attribute in ("log_dir", "save_dir"):
            value = getattr(logger, attribute, None)
            if value:
                return str(value)
    return str(trainer.default_root_dir)


def _safe_path(name: str) -> str:
    return "/".join(re.sub(r"[^A-Za-z0-9_.=@-]+", "_", part) for part in name.split("/"))
