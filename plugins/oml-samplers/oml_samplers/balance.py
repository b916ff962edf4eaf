"""``BalanceSampler``: batches of ``n_labels`` labels x ``n_instances`` instances, every label once per epoch."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from oml_samplers._base import EpochBatchSampler, Groups, SamplerError, as_label_tensor, check_count, check_instances, lbl2idx_of

__all__ = ["BalanceSampler", "BalanceSamplerConfig"]


@attrs.frozen(kw_only=True)
class BalanceSamplerConfig:
    """``n_labels`` labels per batch, ``n_instances`` items of each (batch size ``n_labels * n_instances``)."""

    n_labels: int
    n_instances: int


class BalanceSampler(EpochBatchSampler):
    """Batches of ``n_labels`` distinct labels with ``n_instances`` items each (consecutive in the batch), as in
    "In Defense of the Triplet Loss for Person Re-Identification". Pass it as ``DataLoader(batch_sampler=...)``.

    An epoch visits every label exactly once, in a random order: ``ceil(L / n_labels)`` batches for ``L`` labels
    (OML 4.0 dropped the ``L % n_labels`` leftover labels; here the last batch is completed with labels drawn from
    the other batches, never repeating a label within a batch). A label with fewer than ``n_instances`` items is
    sampled with repetition (all its items, then random repeats). Seeding, resuming with
    ``set_epoch(epoch, start_batch=...)`` and ``rank`` / ``world_size`` splitting: see ``EpochBatchSampler``.

    Example:
        >>> sampler = BalanceSampler([0, 0, 1, 1, 1, 2, 2], n_labels=2, n_instances=2, seed=0)
        >>> sampler.lbl2idx, sampler.batch_size, len(sampler)
        ({0: [0, 1], 1: [2, 3, 4], 2: [5, 6]}, 4, 2)
    """

    def __init__(
        self,
        labels: Sequence[int] | Any,
        n_labels: int,
        n_instances: int,
        *,
        seed: int | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        who = "BalanceSampler"
        labels_t = as_label_tensor(labels, who)
        self.n_labels = check_count(n_labels, "n_labels", who, 2)
        self.n_instances = check_count(n_instances, "n_instances", who, 2)
        groups = Groups(labels_t)
        unique = groups.keys
        check_instances(unique, groups.count, who)
        if n_labels > len(unique):
            raise SamplerError(f"{who}(n_labels={n_labels}): the dataset has only {len(unique)} labels")
        super().__init__(who, seed, rank, world_size)
        self._labels = labels_t
        self._unique = unique
        self._groups = groups

    @property
    def batch_size(self) -> int:
        return self.n_labels * self.n_instances

    @functools.cached_property
    def lbl2idx(self) -> dict[int, list[int]]:
        """``{label: [dataset indices]}``, labels in order of first appearance (built on first access)."""
        return lbl2idx_of(self._labels)

    def _global_len(self) -> int:
        return math.ceil(len(self._unique) / self.n_labels)

    def _global_batches(self, generator: torch.Generator, n_batches: int) -> list[list[int]]:
        n_unique, k = len(self._unique), self.n_labels
        order = torch.randperm(n_unique, generator=generator)
        full = (n_unique // k) * k
        rows = [order[:full].reshape(-1, k)]
        if full < n_unique:
            # complete the last batch with labels of the full batches (so no label repeats inside it)
            fill = order[:full][torch.randperm(full, generator=generator)[: k - (n_unique - full)]]
            rows.append(torch.cat([order[full:], fill])[None])
        for _ in range(n_batches - self._global_len()):  # padding so that every rank gets as many batches
            rows.append(torch.randperm(n_unique, generator=generator)[:k][None])
        return self._instances(self._groups, torch.cat(rows), self.n_instances, generator)

    def __repr__(self) -> str:
        return (
            f"BalanceSampler(n_labels={self.n_labels}, n_instances={self.n_instances}, labels={len(self._unique)}, "
            f"seed={self.seed}, rank={self.rank}, world_size={self.world_size})"
        )
