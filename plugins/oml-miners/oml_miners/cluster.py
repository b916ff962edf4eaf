"""Hard mining between label centres (OML's ``HardClusterMiner``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from oml_miners._common import PooledTriplets, check_batch, pairwise_dist, require_triplets

__all__ = ["HardClusterMiner"]


class HardClusterMiner:
    """One triplet per label of the batch: the anchor is the label's mean embedding, the positive its instance
    farthest from that mean, the negative the closest mean of another label.

    The means are not batch items, so it returns ``PooledTriplets`` over ``pool_features = [features; means]``
    (the means keep their gradient through ``features``). Labels with a single instance in the batch are not
    anchors (their mean is the instance itself) but their mean can be a negative. Ties go to the lowest index.

    Example:
        >>> features = torch.tensor([[0.0], [2.0], [10.0], [11.0]])
        >>> tri = HardClusterMiner().sample(features, torch.tensor([0, 0, 1, 1]))
        >>> tri.pool_features[:, 0].tolist(), tri.anchors.tolist(), tri.positives.tolist(), tri.negatives.tolist()
        ([0.0, 2.0, 10.0, 11.0, 1.0, 10.5], [4, 5], [0, 2], [5, 4])
    """

    def sample(self, features: Tensor, labels: Tensor | Sequence[int]) -> PooledTriplets:
        labels_t = check_batch(features, labels, "HardClusterMiner")
        require_triplets(labels_t, "HardClusterMiner")
        unique, inverse, counts = torch.unique(labels_t, return_inverse=True, return_counts=True)
        sums = torch.zeros(len(unique), features.shape[1], dtype=features.dtype, device=features.device)
        means = sums.index_add(0, inverse, features) / counts[:, None].to(features.dtype)
        batch_size = len(features)
        with torch.no_grad():
            detached = means.detach()
            intra = (features.detach() - detached[inverse]).pow(2).sum(1)
            # farthest instance per label: order by distance (desc, stable), then by label (stable) -> first of each group
            by_distance = torch.sort(intra, descending=True, stable=True).indices
            by_label = by_distance[torch.sort(inverse[by_distance], stable=True).indices]
            group_start = torch.cumsum(counts, 0) - counts
            farthest = by_label[group_start]
            inter = pairwise_dist(detached, detached)
            inter.fill_diagonal_(float("inf"))
            closest = inter.argmin(1)
        anchor_labels = (counts >= 2).nonzero(as_tuple=True)[0]
        return PooledTriplets(
            batch_size + anchor_labels,
            farthest[anchor_labels],
            batch_size + closest[anchor_labels],
            pool_features=torch.cat([features, means]),
            pool_labels=torch.cat([labels_t, unique]),
        )

    def __repr__(self) -> str:
        return "HardClusterMiner()"
