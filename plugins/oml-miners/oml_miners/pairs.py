"""Pairs for pairwise models and contrastive losses (OML's ``PairsMiner``)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from oml_core.protocols import Pairs
from oml_miners._common import check_batch, mining_distances, positive_negative_masks, require_triplets
from oml_miners.inbatch import HardTripletsMiner

__all__ = ["PairsMiner", "PairsMinerConfig"]


@attrs.frozen(kw_only=True)
class PairsMinerConfig:
    """``hard_mining``: the pairs of the hardest triplets (``true``) or of all triplets (``false``)."""

    hard_mining: bool = True


def _unique_pairs(first: Tensor, second: Tensor) -> Tensor:
    pairs = torch.stack([torch.minimum(first, second), torch.maximum(first, second)], dim=1)
    return torch.unique(pairs, dim=0)  # sorted lexicographically


class PairsMiner:
    """Unordered pairs taken apart from the triplets of a batch: ``(anchor, positive)`` pairs first, then
    ``(anchor, negative)`` pairs, each pair once as ``(i, j)`` with ``i < j``, in lexicographic order.

    ``hard_mining=True`` uses each anchor's hardest triplet (as ``HardTripletsMiner``): the pairs the model finds
    most confusing; ``False`` uses all triplets, i.e. every positive pair and every negative pair that contains an
    item with a positive. ``sample`` returns ``Pairs`` which unpacks as OML's ``(ids1, ids2, is_negative)``.

    Example:
        >>> ids1, ids2, is_negative = PairsMiner(hard_mining=False).sample(torch.randn(3, 4), torch.tensor([0, 0, 1]))
        >>> ids1.tolist(), ids2.tolist(), is_negative.tolist()
        ([0, 0, 1], [1, 2, 2], [False, True, True])
    """

    def __init__(self, hard_mining: bool = True) -> None:
        self.hard_mining = hard_mining

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> Pairs:
        labels_t = check_batch(features, labels, "PairsMiner")
        require_triplets(labels_t, "PairsMiner")
        if self.hard_mining:
            with torch.no_grad():
                distances = mining_distances(features.detach())
            anchors, positives, negatives = HardTripletsMiner.sample_from_distmat(distances, labels_t)
            pos_pairs = _unique_pairs(anchors, positives)
            neg_pairs = _unique_pairs(anchors, negatives)
        else:
            positive, negative = positive_negative_masks(labels_t)
            has_pos = positive.any(1)
            pos_pairs = torch.triu(positive, 1).nonzero()
            # a negative pair comes from a triplet when one of its two items has a positive (and so is an anchor)
            neg_pairs = torch.triu(negative & (has_pos[:, None] | has_pos[None, :]), 1).nonzero()
        is_negative = torch.cat([torch.zeros(len(pos_pairs), dtype=torch.bool), torch.ones(len(neg_pairs), dtype=torch.bool)])
        both = torch.cat([pos_pairs, neg_pairs])
        return Pairs(both[:, 0], both[:, 1], is_negative.to(features.device))

    def __repr__(self) -> str:
        return f"PairsMiner(hard_mining={self.hard_mining})"
