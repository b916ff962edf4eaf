"""OML batch samplers (``DataLoader(dataset, batch_sampler=...)``) with OML's names and call shapes::

    from oml_samplers import BalanceSampler

    sampler = BalanceSampler(train_dataset.get_labels(), n_labels=2, n_instances=2)
    print(sampler.lbl2idx, sampler.batch_size)

They satisfy ``oml_core.protocols.BatchSampler``: exact ``len()``, ``set_epoch(epoch, start_batch=0)`` to replay
(or resume inside) an epoch, ``seed=`` for reproducible epochs, ``rank=`` / ``world_size=`` (default: from
torch.distributed) for different batches on each process.
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EpochBatchSampler": "oml_samplers._base",
        "SamplerError": "oml_samplers._base",
        "epoch_generator": "oml_samplers._base",
        "BalanceSampler": "oml_samplers.balance",
        "BalanceSamplerConfig": "oml_samplers.balance",
        "CategoryBalanceSampler": "oml_samplers.category",
        "CategoryBalanceSamplerConfig": "oml_samplers.category",
        "DistinctCategoryBalanceSampler": "oml_samplers.category",
        "DistinctCategoryBalanceSamplerConfig": "oml_samplers.category",
    },
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
