"""A triplet miner with a memory bank of past embeddings (OML's ``TripletMinerWithMemory``, MoCo-style queue)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch
from torch import Tensor

from oml_miners._common import MiningError, PooledTriplets, check_batch, make_generator, positive_negative_masks, require_triplets
from oml_miners.inbatch import get_available_triplets

__all__ = ["TripletMinerWithMemory", "TripletMinerWithMemoryConfig"]


@attrs.frozen(kw_only=True)
class TripletMinerWithMemoryConfig:
    """``bank_size_in_batches``: how many past batches the bank holds; ``tri_expand_k``: return ``k`` times as many
    triplets as the batch alone has (``1``: no triplet from the bank); ``seed``: private generator (``null``: torch's)."""

    bank_size_in_batches: int = 4
    tri_expand_k: int = 2
    seed: int | None = None


def _randint(high: Tensor, generator: torch.Generator | None) -> Tensor:
    """One uniform int in ``[0, high[i])`` per element of ``high`` (all ``high >= 1``)."""
    u = torch.rand(high.shape, generator=generator, dtype=torch.float64).to(high.device)
    return torch.minimum((u * high).long(), high - 1)


class TripletMinerWithMemory:
    """All triplets of the batch, plus ``(tri_expand_k - 1) x`` as many that reach into a FIFO bank of the
    embeddings (detached) and labels of the last ``bank_size_in_batches`` batches:

    - half have anchor and positive from the bank and the negative from the batch,
    - half have anchor and positive from the batch and the negative from the bank

    (candidates whose "negative" turns out to share the anchor's label are dropped, as in OML). The batch is pushed
    into the bank after mining. Indices point into ``pool_features = [features; bank]`` (``PooledTriplets``);
    triplets with every index ``< len(batch)`` are the batch's own, and come first.

    The bank, its write position and the miner's generator are saved by ``state_dict()`` and restored by
    ``load_state_dict()`` (``TripletLossWithMiner`` includes them in its own ``state_dict``), so a resumed run mines
    exactly as an uninterrupted one. Batches may vary in size; the bank holds ``bank_size_in_batches`` times the
    first batch's size.

    Example:
        >>> miner = TripletMinerWithMemory(bank_size_in_batches=2, tri_expand_k=3, seed=0)
        >>> labels = torch.tensor([0, 0, 1, 1])
        >>> len(miner.sample(torch.randn(4, 8), labels))  # empty bank: the batch's 8 triplets only
        8
        >>> len(miner.sample(torch.randn(4, 8), labels)) > 8
        True
    """

    def __init__(
        self,
        bank_size_in_batches: int,
        tri_expand_k: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if bank_size_in_batches < 1:
            raise MiningError(f"TripletMinerWithMemory(bank_size_in_batches={bank_size_in_batches}): must be at least 1")
        if tri_expand_k < 1:
            raise MiningError(f"TripletMinerWithMemory(tri_expand_k={tri_expand_k}): must be at least 1")
        self.bank_size_in_batches = bank_size_in_batches
        self.tri_expand_k = tri_expand_k
        self.generator = make_generator(seed, generator)
        self.bank_features: Tensor | None = None
        self.bank_labels: Tensor | None = None
        self.ptr = 0
        self.filled = 0

    # ------------------------------------------------------------------------------------------ mining
    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> PooledTriplets:
        labels_t = check_batch(features, labels, "TripletMinerWithMemory")
        require_triplets(labels_t, "TripletMinerWithMemory")
        self._allocate(features)
        assert self.bank_features is not None and self.bank_labels is not None
        bank_features = self.bank_features[: self.filled].clone()  # the bank changes in place below
        bank_labels = self.bank_labels[: self.filled].clone()
        batch_size = len(features)

        own = get_available_triplets(labels_t)
        n_extra = int(len(own) * (self.tri_expand_k - 1) / 2)
        parts = [(own.anchors, own.positives, own.negatives)]
        if n_extra > 0 and self.filled > 0:
            parts.append(self._bank_pairs_batch_negatives(labels_t, bank_labels, n_extra, batch_size))
            parts.append(self._batch_pairs_bank_negatives(labels_t, bank_labels, n_extra, batch_size))
        anchors, positives, negatives = (torch.cat(column) for column in zip(*parts))

        self._push(features, labels_t)
        return PooledTriplets(
            anchors,
            positives,
            negatives,
            pool_features=torch.cat([features, bank_features]),
            pool_labels=torch.cat([labels_t, bank_labels]),
        )

    def _bank_pairs_batch_negatives(
        self, labels: Tensor, bank_labels: Tensor, n: int, offset: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        # positive pairs inside the bank, drawn without listing them: sort the bank by label, then an anchor with a
        # group of size g >= 2 gets a random other member of its group
        device = labels.device
        order = torch.sort(bank_labels, stable=True).indices
        _, inverse, counts = torch.unique(bank_labels[order], return_inverse=True, return_counts=True)
        size = counts[inverse]
        start = (torch.cumsum(counts, 0) - counts)[inverse]
        eligible = (size >= 2).nonzero(as_tuple=True)[0]
        if len(eligible) == 0:
            return (torch.empty(0, dtype=torch.long, device=device),) * 3
        slot = eligible[_randint(torch.full((n,), len(eligible), device=device), self.generator)]
        within = slot - start[slot]
        other = start[slot] + (within + 1 + _randint(size[slot] - 1, self.generator)) % size[slot]
        anchors, positives = order[slot], order[other]
        negatives = _randint(torch.full((n,), len(labels), device=device), self.generator)
        keep = bank_labels[anchors] != labels[negatives]
        return anchors[keep] + offset, positives[keep] + offset, negatives[keep]

    def _batch_pairs_bank_negatives(
        self, labels: Tensor, bank_labels: Tensor, n: int, offset: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        device = labels.device
        positive, _ = positive_negative_masks(labels)
        pos_anchor, pos_item = positive.nonzero(as_tuple=True)
        pick = _randint(torch.full((n,), len(pos_anchor), device=device), self.generator)
        anchors, positives = pos_anchor[pick], pos_item[pick]
        negatives = _randint(torch.full((n,), len(bank_labels), device=device), self.generator)
        keep = labels[anchors] != bank_labels[negatives]
        return anchors[keep], positives[keep], negatives[keep] + offset

    # ------------------------------------------------------------------------------------------ bank
    def _allocate(self, features: Tensor) -> None:
        if self.bank_features is None:
            size = self.bank_size_in_batches * len(features)
            self.bank_features = torch.zeros(size, features.shape[1], dtype=features.dtype, device=features.device)
            self.bank_labels = torch.zeros(size, dtype=torch.long, device=features.device)
        elif self.bank_features.shape[1] != features.shape[1]:
            raise MiningError(
                f"TripletMinerWithMemory holds embeddings of dim {self.bank_features.shape[1]} but got features of dim "
                f"{features.shape[1]}; use one miner per embedding size"
            )
        else:  # e.g. restored from a checkpoint on the CPU
            assert self.bank_labels is not None
            self.bank_features = self.bank_features.to(features.device, features.dtype)
            self.bank_labels = self.bank_labels.to(features.device)

    @torch.no_grad()
    def _push(self, features: Tensor, labels: Tensor) -> None:
        assert self.bank_features is not None and self.bank_labels is not None
        size = len(self.bank_features)
        rows = (self.ptr + torch.arange(len(features), device=self.bank_features.device)) % size
        take = slice(max(0, len(features) - size), None)  # a batch larger than the bank keeps its last rows
        self.bank_features[rows[take]] = features.detach()[take]
        self.bank_labels[rows[take]] = labels[take]
        self.ptr = (self.ptr + len(features)) % size
        self.filled = min(size, self.filled + len(features))

    def state_dict(self) -> dict[str, Any]:
        """The bank (CPU tensors), its write position and fill level, and the private generator's state."""
        return {
            "bank_features": None if self.bank_features is None else self.bank_features.detach().cpu().clone(),
            "bank_labels": None if self.bank_labels is None else self.bank_labels.cpu().clone(),
            "ptr": self.ptr,
            "filled": self.filled,
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the bank moves to the features' device at the next batch)."""
        missing = {"bank_features", "bank_labels", "ptr", "filled"} - set(state)
        if missing:
            raise MiningError(f"TripletMinerWithMemory.load_state_dict: the state lacks {sorted(missing)}")
        self.bank_features, self.bank_labels = state["bank_features"], state["bank_labels"]
        self.ptr, self.filled = int(state["ptr"]), int(state["filled"])
        if state.get("generator") is not None:
            if self.generator is None:
                self.generator = torch.Generator()
            self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"TripletMinerWithMemory(bank_size_in_batches={self.bank_size_in_batches}, tri_expand_k={self.tri_expand_k})"
