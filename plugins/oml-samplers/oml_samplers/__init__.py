"""OML batch samplers (``DataLoader(dataset, batch_sampler=...)``) with OML's names and call shapes::

    from oml_samplers import BalanceSampler

    sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
    print(sampler.lbl2idx, sampler.batch_size)

They satisfy ``oml_core.protocols.BatchSampler``: exact ``len()``, ``set_epoch(epoch, start_batch=0)`` to replay
(or resume inside) an epoch, ``seed=`` for reproducible epochs, ``rank=`` / ``world_size=`` (default: from
torch.distributed) for different batches on each process.
"""

from oml_samplers._base import EpochBatchSampler, SamplerError, epoch_generator
from oml_samplers.balance import BalanceSampler, BalanceSamplerConfig
from oml_samplers.category import (
    CategoryBalanceSampler,
    CategoryBalanceSamplerConfig,
    DistinctCategoryBalanceSampler,
    DistinctCategoryBalanceSamplerConfig,
)

__all__ = [
    "BalanceSampler",
    "BalanceSamplerConfig",
    "CategoryBalanceSampler",
    "CategoryBalanceSamplerConfig",
    "DistinctCategoryBalanceSampler",
    "DistinctCategoryBalanceSamplerConfig",
    "EpochBatchSampler",
    "SamplerError",
    "epoch_generator",
]
