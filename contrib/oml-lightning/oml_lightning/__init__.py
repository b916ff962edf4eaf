"""OML for Lightning (``lightning.pytorch``): train extractors and re-rankers with ``pl.Trainer`` and validate them
with OML's retrieval metrics, with OML's class names and call shapes.

Example (seed 001 with its import lines changed)::

    import lightning.pytorch as pl                      # was: import pytorch_lightning as pl
    from oml_core.retrieval import EmbeddingMetrics     # was: from oml.metrics.embeddings import EmbeddingMetrics
    from oml_lightning import ExtractorModule, MetricValCallback   # was: from oml.lightning... import ...

    pl_model = ExtractorModule(model, criterion, optimizer)
    metric_callback = MetricValCallback(metric=EmbeddingMetrics(extra_keys=["paths"]), log_images=True)
    trainer = pl.Trainer(max_epochs=5, callbacks=[metric_callback], num_sanity_val_steps=0, logger=logger)
    trainer.fit(pl_model, train_dataloaders=train_loader, val_dataloaders=val_loader)
    trainer.save_checkpoint("trained_model.ckpt")
    pl_model.load_state_dict(torch.load("trained_model.ckpt")["state_dict"])

Code written for the separate ``pytorch_lightning`` package (``import pytorch_lightning as pl``) imports the same
classes from :mod:`oml_lightning.pytorch_lightning` instead: each Lightning package only accepts its own classes.
"""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.loggers import Logger as _LightningLogger

from oml_lightning import logging
from oml_lightning._impl import (
    DDPLoadersLogic,
    ExtractorLogic,
    LightningAdapterError,
    MetricValLogic,
    PairwiseLogic,
    RankBatchSampler,
    loader_for_rank,
    log_figure,
)
from oml_lightning._loggers import OMLLoggerLogic

__version__ = "0.1.0"


class ExtractorModule(ExtractorLogic, pl.LightningModule):
    __doc__ = ExtractorLogic.__doc__


class ExtractorModuleDDP(DDPLoadersLogic, ExtractorLogic, pl.LightningModule):
    """``ExtractorModule`` that splits ``loaders_train`` / ``loaders_val`` across DDP processes itself (OML's
    ``ExtractorModuleDDP``), also when the train loader has a batch sampler such as ``BalanceSampler``::

        pl_model = ExtractorModuleDDP(extractor=model, criterion=criterion, optimizer=optimizer,
                                      loaders_train=train_loader, loaders_val=val_loader)
        trainer = pl.Trainer(strategy="ddp", devices=2, use_distributed_sampler=False, callbacks=[metric_callback])
        trainer.fit(pl_model)
    """


class PairwiseModule(PairwiseLogic, pl.LightningModule):
    __doc__ = PairwiseLogic.__doc__


class PairwiseModuleDDP(DDPLoadersLogic, PairwiseLogic, pl.LightningModule):
    """``PairwiseModule`` that splits ``loaders_train`` / ``loaders_val`` across DDP processes (see ``ExtractorModuleDDP``)."""


class MetricValCallback(MetricValLogic, pl.Callback):
    __doc__ = MetricValLogic.__doc__


class OMLLogger(OMLLoggerLogic, _LightningLogger):
    __doc__ = OMLLoggerLogic.__doc__


__all__ = [
    "OMLLogger",
    "ExtractorModule",
    "ExtractorModuleDDP",
    "LightningAdapterError",
    "MetricValCallback",
    "PairwiseModule",
    "PairwiseModuleDDP",
    "RankBatchSampler",
    "loader_for_rank",
    "log_figure",
    "logging",
]
