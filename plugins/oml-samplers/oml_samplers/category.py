"""Samplers that also balance categories (e.g. product types): ``n_categories x n_labels x n_instances`` batches."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from oml_samplers._base import EpochBatchSampler, Groups, SamplerError, as_label_tensor, check_count, check_instances, lbl2idx_of

__all__ = [
    "CategoryBalanceSampler",
    "CategoryBalanceSamplerConfig",
    "DistinctCategoryBalanceSampler",
    "DistinctCategoryBalanceSamplerConfig",
]


def _category_index(unique: Tensor, label2category: Mapping[Any, Any] | None, who: str) -> tuple[Tensor, list[Any]]:
    """Category id of every unique label, and the sorted category names."""
    if label2category is None:
        raise SamplerError(f"{who} needs label2category (label -> category), e.g. from the dataframe's 'category' column")
    mapping = {int(label): category for label, category in label2category.items()}
    missing = [int(label) for label in unique.tolist() if int(label) not in mapping]
    if missing:
        raise SamplerError(
            f"{who}: label2category has no category for label(s) {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    names = sorted({mapping[int(label)] for label in unique.tolist()}, key=lambda c: (type(c).__name__, c))
    index = {name: i for i, name in enumerate(names)}
    return torch.tensor([index[mapping[int(label)]] for label in unique.tolist()], dtype=torch.long), names


class _CategorySampler(EpochBatchSampler):
    def __init__(
        self,
        who: str,
        labels: Any,
        label2category: Mapping[Any, Any] | None,
        n_categories: int,
        n_labels: int,
        n_instances: int,
        seed: int | None,
        rank: int | None,
        world_size: int | None,
    ) -> None:
        labels_t = as_label_tensor(labels, who)
        self.n_categories = check_count(n_categories, "n_categories", who, 1)
        self.n_labels = check_count(n_labels, "n_labels", who, 2)
        self.n_instances = check_count(n_instances, "n_instances", who, 2)
        groups = Groups(labels_t)
        unique = groups.keys
        check_instances(unique, groups.count, who)
        self._label_category, self.categories = _category_index(unique, label2category, who)
        if n_categories > len(self.categories):
            raise SamplerError(f"{who}(n_categories={n_categories}): the dataset has only {len(self.categories)} categories")
        if n_labels > len(unique):
            raise SamplerError(f"{who}(n_labels={n_labels}): the dataset has only {len(unique)} labels")
        super().__init__(who, seed, rank, world_size)
        self._labels = labels_t
        self._unique = unique
        self._groups = groups
        self._by_category = Groups(self._label_category)

    @property
    def batch_size(self) -> int:
        return self.n_categories * self.n_labels * self.n_instances

    @functools.cached_property
    def lbl2idx(self) -> dict[int, list[int]]:
        """``{label: [dataset indices]}``, labels in order of first appearance (built on first access)."""
        return lbl2idx_of(self._labels)

    def _small_categories(self) -> list[Any]:
        return [name for name, count in zip(self.categories, self._by_category.count.tolist()) if count < self.n_labels]


@attrs.frozen(kw_only=True)
class CategoryBalanceSamplerConfig:
    """``n_categories`` categories per batch, ``n_labels`` labels of each, ``n_instances`` items of each label;
    ``resample_labels``: allow categories with fewer than ``n_labels`` labels (repeating them);
    ``weight_categories``: pick categories in proportion to their number of labels."""

    n_categories: int
    n_labels: int
    n_instances: int
    resample_labels: bool = False
    weight_categories: bool = True


class CategoryBalanceSampler(_CategorySampler):
    """Each batch: ``n_categories`` distinct categories (weighted by their number of labels when
    ``weight_categories``), ``n_labels`` labels of each (distinct when the category has enough), ``n_instances``
    items of each label (with repetition for small labels). Batches are drawn independently, ``ceil(L / n_labels)``
    per epoch, as in OML; ``label2category`` maps every label to its category.

    Example:
        >>> labels = [0, 0, 1, 1, 2, 2, 3, 3]
        >>> l2c = {0: "a", 1: "a", 2: "b", 3: "b"}
        >>> sampler = CategoryBalanceSampler(labels, l2c, n_categories=2, n_labels=2, n_instances=2, seed=0)
        >>> sampler.batch_size, len(sampler), sorted(next(iter(sampler)))
        (8, 2, [0, 1, 2, 3, 4, 5, 6, 7])
    """

    def __init__(
        self,
        labels: Sequence[int] | Any,
        label2category: Mapping[Any, Any],
        n_categories: int,
        n_labels: int,
        n_instances: int,
        resample_labels: bool = False,
        weight_categories: bool = True,
        *,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        who = "CategoryBalanceSampler"
        super().__init__(who, labels, label2category, n_categories, n_labels, n_instances, seed, rank, world_size)
        self.resample_labels, self.weight_categories = resample_labels, weight_categories
        small = self._small_categories()
        if small and not resample_labels:
            raise SamplerError(
                f"{who}(n_labels={n_labels}): categories {small[:10]} have fewer labels than that; lower n_labels or pass "
                "resample_labels=True to repeat their labels"
            )
        counts = self._by_category.count.double()
        self._weights = counts / counts.sum() if weight_categories else torch.ones_like(counts)

    def _global_len(self) -> int:
        return math.ceil(len(self._unique) / self.n_labels)

    def _global_batches(self, generator: torch.Generator, n_batches: int) -> list[list[int]]:
        categories = torch.multinomial(
            self._weights.expand(n_batches, -1), self.n_categories, replacement=False, generator=generator
        )
        labels = self._by_category.sample(categories.reshape(-1), self.n_labels, generator)
        return self._instances(self._groups, labels.reshape(n_batches, -1), self.n_instances, generator)


@attrs.frozen(kw_only=True)
class DistinctCategoryBalanceSamplerConfig:
    """As ``category_balance``, but labels are not repeated until every label of a category has been used;
    ``epoch_size``: batches per epoch (over all ranks)."""

    n_categories: int
    n_labels: int
    n_instances: int
    epoch_size: int


class DistinctCategoryBalanceSampler(_CategorySampler):
    """OML's ``DistinctCategoryBalanceSampler``: like ``CategoryBalanceSampler``, but a label is used again only
    once every label of its category has been used (then the category's unused labels are completed with used ones,
    and when fewer than ``n_categories`` categories have unused labels, everything starts over). ``epoch_size``
    batches per epoch; every category needs at least ``n_labels`` labels.

    Example:
        >>> labels = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        >>> l2c = {0: "a", 1: "a", 2: "a", 3: "b", 4: "b", 5: "b"}
        >>> sampler = DistinctCategoryBalanceSampler(labels, l2c, n_categories=1, n_labels=3, n_instances=2, epoch_size=4, seed=1)
        >>> [len(batch) for batch in sampler]
        [6, 6, 6, 6]
    """

    def __init__(
        self,
        labels: Sequence[int] | Any,
        label2category: Mapping[Any, Any],
        n_categories: int,
        n_labels: int,
        n_instances: int,
        epoch_size: int,
        *,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        who = "DistinctCategoryBalanceSampler"
        self.epoch_size = check_count(epoch_size, "epoch_size", who, 1)
        super().__init__(who, labels, label2category, n_categories, n_labels, n_instances, seed, rank, world_size)
        small = self._small_categories()
        if small:
            raise SamplerError(f"{who}(n_labels={n_labels}): categories {small[:10]} have fewer labels than that")
        members = self._by_category
        self._category_labels = [
            members.members[start : start + count].tolist()
            for start, count in zip(members.start.tolist(), members.count.tolist())
        ]

    def _global_len(self) -> int:
        return self.epoch_size

    def _global_batches(self, generator: torch.Generator, n_batches: int) -> list[list[int]]:
        def pick(values: list[int], k: int) -> list[int]:
            return [values[i] for i in torch.randperm(len(values), generator=generator)[:k].tolist()]

        available: dict[int, list[int]] = {}
        used: dict[int, list[int]] = {}
        rows = []
        for _ in range(n_batches):
            if len(available) < self.n_categories:
                available = {c: list(labels) for c, labels in enumerate(self._category_labels)}
                used = {c: [] for c in available}
            row: list[int] = []
            for category in pick(sorted(available), self.n_categories):
                unused = available[category]
                if len(unused) >= self.n_labels:
                    chosen = pick(unused, self.n_labels)
                else:
                    chosen = unused + pick(used[category], self.n_labels - len(unused))
                taken = set(chosen)
                available[category] = [label for label in unused if label not in taken]
                used[category] += [label for label in chosen if label in set(unused)]
                if not available[category]:
                    del available[category]
                row += chosen
            rows.append(row)
        return self._instances(self._groups, torch.tensor(rows, dtype=torch.long), self.n_instances, generator)
