"""The classes of :mod:`oml_lightning` for the separate ``pytorch_lightning`` package, for code that says
``import pytorch_lightning as pl`` (a ``pytorch_lightning.Trainer`` accepts only ``pytorch_lightning`` modules and
callbacks). Needs ``pytorch_lightning`` installed; ``oml-lightning`` itself depends only on ``lightning``.

Example (seed 001, unchanged but for its imports)::

    import pytorch_lightning as pl
    from oml_lightning.pytorch_lightning import ExtractorModule, MetricValCallback
"""

from __future__ import annotations

try:
    import pytorch_lightning as pl
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name != "pytorch_lightning":
        raise
    raise ModuleNotFoundError(
        "oml_lightning.pytorch_lightning is for the separate `pytorch_lightning` package, which is not installed: "
        "`pip install pytorch-lightning`, or keep `lightning` and write `import lightning.pytorch as pl` with "
        "`from oml_lightning import ExtractorModule, MetricValCallback`",
        name="pytorch_lightning",
    ) from exc

from pytorch_lightning.loggers import Logger as _LightningLogger

from oml_lightning._impl import DDPLoadersLogic, ExtractorLogic, MetricValLogic, PairwiseLogic
from oml_lightning._loggers import OMLLoggerLogic


class OMLLogger(OMLLoggerLogic, _LightningLogger):
    """An OML logger chosen by name, for ``pytorch_lightning`` (see ``oml_lightning.OMLLogger``)."""


class ExtractorModule(ExtractorLogic, pl.LightningModule):
    __doc__ = ExtractorLogic.__doc__


class ExtractorModuleDDP(DDPLoadersLogic, ExtractorLogic, pl.LightningModule):
    """``ExtractorModule`` that splits its loaders across DDP processes (see ``oml_lightning.ExtractorModuleDDP``)."""


class PairwiseModule(PairwiseLogic, pl.LightningModule):
    __doc__ = PairwiseLogic.__doc__


class PairwiseModuleDDP(DDPLoadersLogic, PairwiseLogic, pl.LightningModule):
    """``PairwiseModule`` that splits its loaders across DDP processes (see ``oml_lightning.ExtractorModuleDDP``)."""


class MetricValCallback(MetricValLogic, pl.Callback):
    __doc__ = MetricValLogic.__doc__


__all__ = ["ExtractorModule", "ExtractorModuleDDP", "MetricValCallback", "OMLLogger", "PairwiseModule", "PairwiseModuleDDP"]
