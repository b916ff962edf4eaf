"""Miners that form triplets inside the batch: all of them, the hardest, or the n hardest per anchor.

Indices follow OML's conventions: an anchor's positives share its label and exclude the anchor itself, its
negatives have another label. Items whose label has a single instance in the batch cannot be anchors (they have no
positive) but still serve as negatives; a batch that cannot form any triplet raises ``MiningError``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from oml_core.protocols import Triplets
from oml_miners._common import (
    MiningError,
    check_batch,
    choose_without_replacement,
    make_generator,
    mining_distances,
    positive_negative_masks,
    require_triplets,
    same_label_members,
    true_columns,
)

__all__ = [
    "AllTripletsMiner",
    "AllTripletsMinerConfig",
    "HardTripletsMiner",
    "NHardTripletsMiner",
    "NHardTripletsMinerConfig",
    "count_all_triplets",
    "get_available_triplets",
]


def count_all_triplets(labels: Tensor) -> int:
    """Number of (anchor, positive, negative) triplets a batch with these labels has.

    Example:
        >>> count_all_triplets(torch.tensor([0, 0, 1, 1]))  # 4 ordered positive pairs x 2 negatives each
        8
    """
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    per_item = counts[inverse]
    return int(((per_item - 1) * (len(labels) - per_item)).sum())


def get_available_triplets(
    labels: Tensor, max_out_triplets: int | None = None, generator: torch.Generator | None = None
) -> Triplets:
    """All triplets of a batch in lexicographic ``(anchor, positive, negative)`` order, or a uniformly random
    ``max_out_triplets`` of them (kept in that order) drawn without listing them all first.

    Example:
        >>> a, p, n = get_available_triplets(torch.tensor([0, 0, 1]))
        >>> a.tolist(), p.tolist(), n.tolist()
        ([0, 1], [1, 0], [2, 2])
    """
    positive, negative = positive_negative_masks(labels)
    pos_anchor, pos_item = positive.nonzero(as_tuple=True)  # row-major: sorted by anchor, then positive
    n_neg = negative.sum(1)[pos_anchor]
    total = int(n_neg.sum())
    if max_out_triplets is None or max_out_triplets >= total:
        chosen = torch.arange(total, device=labels.device)
    else:
        chosen = choose_without_replacement(total, max_out_triplets, generator).to(labels.device)
    # triplet t belongs to positive pair j = the pair whose block of negatives contains t
    ends = n_neg.cumsum(0)
    pair = torch.searchsorted(ends, chosen, right=True)
    rank = chosen - (ends - n_neg)[pair]
    anchors = pos_anchor[pair]
    negatives = true_columns(negative)[anchors, rank]
    return Triplets(anchors, pos_item[pair], negatives)


@attrs.frozen(kw_only=True)
class AllTripletsMinerConfig:
    """``max_output_triplets``: keep a uniformly random subset of this size (``null``: every triplet);
    ``seed``: draw that subset from a private generator (``null``: torch's global RNG)."""

    max_output_triplets: int | None = None
    seed: int | None = None


class AllTripletsMiner:
    """Every triplet of the batch (OML's default miner), optionally a random subset of ``max_output_triplets``.

    ``TripletLossWithMiner`` never asks this miner to list the triplets when it would keep all of them: it reads
    ``all_triplets_masks`` and computes the loss from the distance matrix in blocks (the triplets of a batch of
    1024 would need gigabytes). ``sample`` lists them for everyone else.

    Example:
        >>> miner = AllTripletsMiner()
        >>> anchors, positives, negatives = miner.sample(torch.randn(4, 8), torch.tensor([0, 0, 1, 1]))
        >>> len(anchors)
        8
    """

    def __init__(
        self,
        max_output_triplets: int | None = sys.maxsize,
        device: str | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if max_output_triplets is not None and max_output_triplets < 1:
            raise MiningError(
                f"AllTripletsMiner(max_output_triplets={max_output_triplets}): must be at least 1 (or None for all)"
            )
        self.max_output_triplets = (
            None if max_output_triplets is None or max_output_triplets >= sys.maxsize else max_output_triplets
        )
        self.device = device  # accepted for OML compatibility: mining runs where the labels are
        self.generator = make_generator(seed, generator)

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> Triplets:
        """Indices of all (or ``max_output_triplets`` random) triplets of the batch; ``features`` are not used."""
        labels_t = check_batch(features, labels, "AllTripletsMiner")
        require_triplets(labels_t, "AllTripletsMiner")
        return get_available_triplets(labels_t, self.max_output_triplets, self.generator)

    def all_triplets_masks(self, labels: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(positive, negative)`` masks whose product is the triplet set, when this miner keeps every triplet;
        None when it keeps a random subset (then the loss calls ``sample``)."""
        if self.max_output_triplets is not None and count_all_triplets(labels) > self.max_output_triplets:
            return None
        return positive_negative_masks(labels)

    def __repr__(self) -> str:
        return f"AllTripletsMiner(max_output_triplets={self.max_output_triplets})"


class HardTripletsMiner:
    """For each anchor, its hardest positive (the farthest same-label item) and hardest negative (the closest
    other-label item), by Euclidean distance; ties go to the lowest index. One triplet per anchor that has both.

    Example:
        >>> features = torch.tensor([[0.0], [1.0], [3.0], [1.5]])
        >>> HardTripletsMiner().sample(features, torch.tensor([0, 0, 0, 1])).negatives.tolist()
        [3, 3, 3]
    """

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> Triplets:
        """Hardest triplet of each anchor (anchors in increasing order)."""
        labels_t = check_batch(features, labels, "HardTripletsMiner")
        require_triplets(labels_t, "HardTripletsMiner")
        with torch.no_grad():
            distances = mining_distances(features.detach())
        return self.sample_from_distmat(distances, labels_t)

    @staticmethod
    def sample_from_distmat(distmat: Tensor, labels: Tensor) -> Triplets:
        """The same mining from a precomputed ``(B, B)`` matrix of distances, or of per-row scores that order each
        row as the distances do (``mining_distances``)."""
        labels = labels.to(distmat.device)
        batch = len(labels)
        # positives through the label groups (B x largest label count), not a B x B mask: hard mining runs every step
        members, valid = same_label_members(labels)
        is_positive = valid & (members != torch.arange(batch, device=distmat.device)[:, None])
        n_positive = is_positive.sum(1)
        anchors = ((n_positive > 0) & (valid.sum(1) < batch)).nonzero(as_tuple=True)[0]
        positive_dist = distmat.gather(1, members).masked_fill(~is_positive, float("-inf"))
        hardest_pos = members.gather(1, positive_dist.argmax(1, keepdim=True)).squeeze(1)
        negative_dist = distmat.clone().scatter_(1, members, float("inf"))  # same-label items are no negatives
        hardest_neg = negative_dist.min(1).indices  # min(dim): the first minimum on ties, as argmin
        return Triplets(anchors, hardest_pos[anchors], hardest_neg[anchors])

    def __repr__(self) -> str:
        return "HardTripletsMiner()"


def _parse_n(n: int | tuple[int, int] | list[int], name: str) -> slice:
    """OML's convention: ``n`` keeps the ``n`` hardest; ``(lo, hi)`` keeps the ``lo``-th to the ``hi``-th hardest
    (1-based, inclusive), to skip the very hardest ones that are often annotation errors."""
    if isinstance(n, bool):
        raise MiningError(f"NHardTripletsMiner({name}={n!r}): expected an int or a (from, to) pair")
    if isinstance(n, int):
        lo, hi = 1, n
    elif isinstance(n, (tuple, list)) and len(n) == 2 and all(isinstance(v, int) for v in n):
        lo, hi = n
    else:
        raise MiningError(f"NHardTripletsMiner({name}={n!r}): expected an int or a (from, to) pair of ints")
    if not 1 <= lo <= hi:
        raise MiningError(f"NHardTripletsMiner({name}={n!r}): need 1 <= from <= to")
    return slice(lo - 1, hi)


@attrs.frozen(kw_only=True)
class NHardTripletsMinerConfig:
    """Keep, per anchor, the ``n_positive`` hardest positives x ``n_negative`` hardest negatives, after skipping the
    ``skip_positive`` / ``skip_negative`` very hardest (OML's ``n_positive: [skip + 1, n]`` ranges)."""

    n_positive: int = 1
    n_negative: int = 1
    skip_positive: int = 0
    skip_negative: int = 0


class NHardTripletsMiner:
    """Per anchor, every combination of its ``n_positive`` hardest positives and ``n_negative`` hardest negatives
    (OML's ``NHardTripletsMiner``; ``(lo, hi)`` ranges keep the lo-th to hi-th hardest). Anchors with fewer
    positives or negatives keep what they have. Order: anchor, then positive hardness, then negative hardness.

    Example:
        >>> miner = NHardTripletsMiner(n_positive=2, n_negative=1)
        >>> len(miner.sample(torch.randn(6, 4), torch.tensor([0, 0, 0, 1, 1, 1])))
        12
    """

    def __init__(self, n_positive: int | tuple[int, int] = 1, n_negative: int | tuple[int, int] = 1) -> None:
        self.positive_slice = _parse_n(n_positive, "n_positive")
        self.negative_slice = _parse_n(n_negative, "n_negative")

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> Triplets:
        labels_t = check_batch(features, labels, "NHardTripletsMiner")
        require_triplets(labels_t, "NHardTripletsMiner")
        with torch.no_grad():
            distances = mining_distances(features.detach())
        return self.sample_from_distmat(distances, labels_t)

    def sample_from_distmat(self, distmat: Tensor, labels: Tensor) -> Triplets:
        """The same mining from a precomputed ``(B, B)`` matrix of distances, or of per-row scores that order each
        row as the distances do (``mining_distances``)."""
        positive, negative = positive_negative_masks(labels.to(distmat.device))
        pos_order = torch.sort(distmat.masked_fill(~positive, float("-inf")), dim=1, descending=True, stable=True).indices
        neg_order = torch.sort(distmat.masked_fill(~negative, float("inf")), dim=1, stable=True).indices
        ps, ns = self.positive_slice, self.negative_slice
        pos_ids, neg_ids = pos_order[:, ps], neg_order[:, ns]
        # slots past an anchor's number of positives/negatives hold non-positives/non-negatives: drop them
        pos_ok = torch.arange(ps.start, ps.start + pos_ids.shape[1], device=distmat.device) < positive.sum(1, keepdim=True)
        neg_ok = torch.arange(ns.start, ns.start + neg_ids.shape[1], device=distmat.device) < negative.sum(1, keepdim=True)
        anchor, i, j = (pos_ok[:, :, None] & neg_ok[:, None, :]).nonzero(as_tuple=True)
        return Triplets(anchor, pos_ids[anchor, i], neg_ids[anchor, j])

    def __repr__(self) -> str:
        ps, ns = self.positive_slice, self.negative_slice
        return f"NHardTripletsMiner(n_positive=({ps.start + 1}, {ps.stop}), n_negative=({ns.start + 1}, {ns.stop}))"
