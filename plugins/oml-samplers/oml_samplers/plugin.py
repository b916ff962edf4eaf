"""Registers the batch-sampler factories (entry point ``oml_samplers`` in group ``oml``).

A factory gets the config fields plus the runtime ``labels`` and, where the engine has them, ``label2category``,
``seed``, ``rank`` and ``world_size`` (all optional but ``labels``; ranks default to torch.distributed's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_samplers.balance import BalanceSampler
    from oml_samplers.category import CategoryBalanceSampler, DistinctCategoryBalanceSampler


def make_balance_sampler(
    n_labels: int,
    n_instances: int,
    *,
    labels: Sequence[int],
    label2category: Mapping[Any, Any] | None = None,
    seed: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> BalanceSampler:
    """``BalanceSampler`` from its config fields and the runtime arguments (``label2category`` is not used)."""
    from oml_samplers.balance import BalanceSampler

    return BalanceSampler(labels, n_labels, n_instances, seed=seed, rank=rank, world_size=world_size)


def make_category_balance_sampler(
    n_categories: int,
    n_labels: int,
    n_instances: int,
    resample_labels: bool,
    weight_categories: bool,
    *,
    labels: Sequence[int],
    label2category: Mapping[Any, Any] | None = None,
    seed: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> CategoryBalanceSampler:
    from oml_samplers.category import CategoryBalanceSampler

    return CategoryBalanceSampler(
        labels,
        label2category,  # type: ignore[arg-type]  # None is reported by the sampler with a clear message
        n_categories,
        n_labels,
        n_instances,
        resample_labels,
        weight_categories,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )


def make_distinct_category_balance_sampler(
    n_categories: int,
    n_labels: int,
    n_instances: int,
    epoch_size: int,
    *,
    labels: Sequence[int],
    label2category: Mapping[Any, Any] | None = None,
    seed: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> DistinctCategoryBalanceSampler:
    from oml_samplers.category import DistinctCategoryBalanceSampler

    return DistinctCategoryBalanceSampler(
        labels,
        label2category,  # type: ignore[arg-type]
        n_categories,
        n_labels,
        n_instances,
        epoch_size,
        seed=seed,
        rank=rank,
        world_size=world_size,
    )


@hookimpl
def oml_register_samplers(registry: Any) -> None:
    from oml_samplers.balance import BalanceSamplerConfig
    from oml_samplers.category import CategoryBalanceSamplerConfig, DistinctCategoryBalanceSamplerConfig

    registry.add(
        "balance",
        config=BalanceSamplerConfig,
        factory=make_balance_sampler,
        summary="n_labels labels x n_instances instances per batch, every label once per epoch",
        example={"n_labels": 2, "n_instances": 2},
    )
    registry.add(
        "category_balance",
        config=CategoryBalanceSamplerConfig,
        factory=make_category_balance_sampler,
        summary="n_categories categories x n_labels labels x n_instances instances per batch",
        example={"n_categories": 2, "n_labels": 2, "n_instances": 2},
    )
    registry.add(
        "distinct_category_balance",
        config=DistinctCategoryBalanceSamplerConfig,
        factory=make_distinct_category_balance_sampler,
        summary="like category_balance, without reusing a label until its category is exhausted",
        example={"n_categories": 2, "n_labels": 2, "n_instances": 2, "epoch_size": 5},
    )
