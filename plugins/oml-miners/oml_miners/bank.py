"""OML 4's ``MinerWithBank``: in-batch anchors, positives and negatives from the batch and a bank of past batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from oml_miners._common import MiningError, PooledTriplets, check_batch, mining_distances
from oml_miners.inbatch import NHardTripletsMiner

__all__ = ["MinerWithBank"]


class MinerWithBank:
    """Cross-batch memory as in OML 4: the ``bank_size_in_batches`` last batches (detached embeddings and labels)
    join the batch as candidates, ``miner`` (an :class:`NHardTripletsMiner`) picks each anchor's hardest positives
    and negatives among them, and only the batch's own items are anchors. The bank is used once it is full (until
    then the batch alone is mined). Indices point into ``pool_features = [features; bank]`` (``PooledTriplets``),
    which ``TripletLossWithMiner`` takes as they are. ``last_logs`` counts positives and negatives taken from the
    bank and from the batch, per anchor, averaged.

    Example:
        >>> miner = MinerWithBank(bank_size_in_batches=1, miner=NHardTripletsMiner(n_positive=1, n_negative=1))
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> len(miner.sample(torch.randn(4, 8), labels)), len(miner.sample(torch.randn(4, 8), labels))
        (4, 4)
        >>> sorted(miner.last_logs)
        ['negatives_from_bank', 'negatives_from_batch', 'positives_from_bank', 'positives_from_batch']
    """

    def __init__(self, bank_size_in_batches: int, miner: NHardTripletsMiner, need_logs: bool = True) -> None:
        if not isinstance(bank_size_in_batches, int) or bank_size_in_batches < 1:
            raise MiningError(f"MinerWithBank: bank_size_in_batches must be a positive int, got {bank_size_in_batches!r}")
        if not callable(getattr(miner, "sample_from_distmat", None)):
            raise MiningError(f"MinerWithBank: miner must be an NHardTripletsMiner (as in OML 4), got {type(miner).__name__}")
        self.miner = miner
        self.bank_size_in_batches = bank_size_in_batches
        self.need_logs = need_logs
        self.bank_features: Tensor | None = None
        self.bank_labels: Tensor | None = None
        self.ptr = 0
        self.is_accumulated = False
        self._last_logs: dict[str, float] = {}

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> PooledTriplets:
        labels_t = check_batch(features, labels, "MinerWithBank")
        if self.bank_features is None:
            size = self.bank_size_in_batches * len(features)
            self.bank_features = features.new_empty((size, features.shape[1]))
            self.bank_labels = torch.empty(size, dtype=torch.long, device=features.device)
        assert self.bank_labels is not None
        bank_features, bank_labels = self.bank_features.to(features.device), self.bank_labels.to(features.device)
        n = len(features)
        if self.is_accumulated:
            pool_features = torch.cat([features, bank_features])
            pool_labels = torch.cat([labels_t, bank_labels])
        else:
            pool_features, pool_labels = features, labels_t
        with torch.no_grad():
            distances = mining_distances(pool_features.detach())
        anchors, positives, negatives = self.miner.sample_from_distmat(distances, pool_labels)
        own = anchors < n  # the bank's items are candidates, never anchors
        anchors, positives, negatives = anchors[own], positives[own], negatives[own]
        if self.need_logs:
            self._last_logs = _logs(anchors, positives, negatives, n)
        self._push(features, labels_t)
        return PooledTriplets(anchors, positives, negatives, pool_features=pool_features, pool_labels=pool_labels)

    @torch.no_grad()
    def _push(self, features: Tensor, labels: Tensor) -> None:
        assert self.bank_features is not None and self.bank_labels is not None
        size, n = len(self.bank_features), len(features)
        if n > size:
            raise MiningError(f"MinerWithBank: a batch of {n} is larger than the bank ({size}); the first batch sets its size")
        positions = (self.ptr + torch.arange(n)) % size
        self.bank_features[positions.to(self.bank_features.device)] = features.detach().to(self.bank_features)
        self.bank_labels[positions.to(self.bank_labels.device)] = labels.to(self.bank_labels.device)
        self.is_accumulated = self.is_accumulated or self.ptr + n >= size
        self.ptr = (self.ptr + n) % size

    @property
    def last_logs(self) -> dict[str, Any]:
        """Statistics of the last batch (with ``need_logs=True``)."""
        return self._last_logs

    def __repr__(self) -> str:
        return f"MinerWithBank(bank_size_in_batches={self.bank_size_in_batches}, miner={self.miner!r})"


def _logs(anchors: Tensor, positives: Tensor, negatives: Tensor, batch_size: int) -> dict[str, float]:
    if not len(anchors):
        return {}
    sums: dict[str, float] = {}
    unique_anchors = torch.unique(anchors)
    for anchor in unique_anchors.tolist():
        mine = anchors == anchor
        for name, ids in (("positives", positives[mine]), ("negatives", negatives[mine])):
            distinct = torch.unique(ids)
            from_bank = int((distinct >= batch_size).sum())
            sums[f"{name}_from_bank"] = sums.get(f"{name}_from_bank", 0.0) + from_bank
            sums[f"{name}_from_batch"] = sums.get(f"{name}_from_batch", 0.0) + len(distinct) - from_bank
    return {key: value / len(unique_anchors) for key, value in sorted(sums.items())}
