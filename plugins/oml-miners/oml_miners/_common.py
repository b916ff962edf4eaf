"""What every miner shares: label checks with clear errors, distances, masks and seeded randomness."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from oml_core.distances import pairwise_dist
from oml_core.errors import OMLError
from oml_core.protocols import Triplets

__all__ = [
    "MiningError",
    "PooledTriplets",
    "as_labels",
    "can_form_triplets",
    "check_batch",
    "make_generator",
    "pairwise_dist",
    "positive_negative_masks",
    "require_triplets",
    "same_label_members",
    "mining_distances",
    "true_columns",
]


class MiningError(OMLError, ValueError):
    """A batch from which a miner cannot form what it was asked for (e.g. a single label in the batch)."""


@attrs.frozen
class PooledTriplets(Triplets):
    """Triplets whose indices point into a pool larger than the batch: ``pool_features`` / ``pool_labels``.

    The first ``B`` rows of the pool are the batch itself; the rest are a memory bank (``TripletMinerWithMemory``)
    or per-label centres (``HardClusterMiner``). Losses take ``pool_features[anchors]`` etc. instead of indexing
    the batch. It unpacks like ``Triplets``.

    Example:
        >>> tri = PooledTriplets([2], [0], [3], pool_features=torch.zeros(4, 2), pool_labels=torch.tensor([0, 1, 0, 1]))
        >>> anchors, positives, negatives = tri
        >>> tri.pool_labels[tri.anchors].tolist() == tri.pool_labels[tri.positives].tolist()
        True
    """

    pool_features: Tensor = attrs.field(kw_only=True)
    pool_labels: Tensor = attrs.field(kw_only=True)


def as_labels(labels: Tensor | Sequence[int], device: torch.device | str | None = None) -> Tensor:
    """Labels as a 1-d int64 tensor on ``device`` (accepts tensors of any shape ``(B,)``/``(B, 1)``, lists, arrays).

    Example:
        >>> as_labels([[1], [2]]).tolist()
        [1, 2]
    """
    tensor = torch.as_tensor(labels, device=device)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise MiningError(f"labels must be integers, got a tensor of {tensor.dtype}")
    return tensor.long().reshape(-1)


def check_batch(features: Tensor, labels: Tensor | Sequence[int], who: str) -> Tensor:
    """Validate shapes and return the labels as a long tensor on the features' device."""
    if features.ndim != 2:
        raise MiningError(f"{who} expects features of shape (batch, dim), got shape {tuple(features.shape)}")
    labels_t = as_labels(labels, features.device)
    if len(labels_t) != len(features):
        raise MiningError(f"{who} got {len(features)} feature rows but {len(labels_t)} labels; they must be equally many")
    return labels_t


def _label_summary(labels: Tensor, limit: int = 8) -> str:
    values, counts = torch.unique(labels, return_counts=True)
    pairs = [f"{int(v)}: {int(c)}" for v, c in zip(values[:limit], counts[:limit])]
    more = f", ... ({len(values)} labels)" if len(values) > limit else ""
    return "{" + ", ".join(pairs) + more + "}"


def can_form_triplets(labels: Tensor | Sequence[int]) -> bool:
    """Whether the batch has a label with two instances (a positive pair) and a second label (a negative).

    Example:
        >>> can_form_triplets([0, 0, 1]), can_form_triplets([0, 1, 2]), can_form_triplets([5, 5])
        (True, False, False)
    """
    labels_t = as_labels(labels)
    if len(labels_t) == 0:
        return False
    _, counts = torch.unique(labels_t, return_counts=True)
    return len(counts) >= 2 and bool((counts >= 2).any())


def require_triplets(labels: Tensor, who: str) -> None:
    """Raise a MiningError that says why when ``labels`` cannot form a single triplet."""
    if len(labels) == 0:
        raise MiningError(f"{who} got an empty batch")
    _, counts = torch.unique(labels, return_counts=True)
    hint = "Sample batches with BalanceSampler(labels, n_labels>=2, n_instances>=2) so that every batch can form triplets."
    if len(counts) < 2:
        raise MiningError(
            f"{who} cannot form a triplet: all {len(labels)} items of the batch have the same label ({int(labels[0])}), "
            f"so there is no negative. {hint}"
        )
    if not bool((counts >= 2).any()):
        raise MiningError(
            f"{who} cannot form a triplet: every label of the batch has a single instance, so no anchor has a positive "
            f"(label counts {_label_summary(labels)}). {hint}"
        )


def positive_negative_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(positive, negative)`` boolean ``(B, B)`` masks: same label and not the item itself / another label.

    Example:
        >>> pos, neg = positive_negative_masks(torch.tensor([0, 0, 1]))
        >>> pos.int().tolist(), neg.int().tolist()
        ([[0, 1, 0], [1, 0, 0], [0, 0, 0]], [[0, 0, 1], [0, 0, 1], [1, 1, 0]])
    """
    same = labels[:, None] == labels[None, :]
    positive = same.clone()
    positive.fill_diagonal_(False)
    return positive, ~same


def true_columns(mask: Tensor, width: int | None = None) -> Tensor:
    """Per row of a boolean ``(N, M)`` mask, the columns of its True entries in increasing order, as an
    ``(N, width)`` tensor (``width`` defaults to the most Trues in a row) padded with 0 after each row's Trues.
    (A stable sort of the mask does the same but is several times slower on CPU.)

    Example:
        >>> true_columns(torch.tensor([[False, True, True], [True, False, False]])).tolist()
        [[1, 2], [0, 0]]
    """
    counts = mask.sum(1)
    width = int(counts.max()) if width is None and len(counts) else (width or 0)
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: columns increase within a row
    rank = torch.arange(len(rows), device=mask.device) - (torch.cumsum(counts, 0) - counts)[rows]
    keep = rank < width
    out = torch.zeros(mask.shape[0], width, dtype=torch.long, device=mask.device)
    out[rows[keep], rank[keep]] = cols[keep]
    return out


def same_label_members(labels: Tensor) -> tuple[Tensor, Tensor]:
    """For each item, the items with its label (itself included) in increasing order, as ``(B, W)`` indices
    (``W``: the largest label count) and a ``(B, W)`` validity mask; padded slots repeat the first member.

    Costs ``O(B log B + B W)`` instead of the ``O(B^2)`` of a label-equality matrix, which matters for hard mining.

    Example:
        >>> members, valid = same_label_members(torch.tensor([4, 7, 4]))
        >>> members.tolist(), valid.tolist()
        ([[0, 2], [1, 1], [0, 2]], [[True, True], [True, False], [True, True]])
    """
    n = len(labels)
    order = torch.sort(labels.double(), stable=True).indices  # int64 sorts are several times slower on CPU
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    ends = torch.cumsum(counts, 0)
    group_sorted = torch.searchsorted(ends, torch.arange(n, device=labels.device), right=True)
    group = torch.empty_like(group_sorted)
    group[order] = group_sorted
    width = int(counts.max()) if n else 0
    start, count = (ends - counts)[group], counts[group]
    slot = torch.arange(width, device=labels.device)
    valid = slot < count[:, None]
    members = order[torch.where(valid, start[:, None] + slot, start[:, None])]
    return members, valid


def mining_distances(x: Tensor) -> Tensor:
    """``(B, B)`` scores ``|x_j|^2 - 2 <x_i, x_j>``: the squared distance minus ``|x_i|^2``, one fused matmul.
    Within each row they order items exactly as the distances do (up to float rounding), which is all that
    row-wise mining (hardest positive / negative of each anchor) needs; cheaper than ``torch.cdist``.

    Example:
        >>> mining_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]])).tolist()  # rows: d^2 - |x_i|^2
        [[0.0, 25.0], [0.0, -25.0]]
    """
    norms = x.pow(2).sum(1)
    return torch.addmm(norms[None, :], x, x.T, alpha=-2)


def make_generator(seed: int | None = None, generator: torch.Generator | None = None) -> torch.Generator | None:
    """The generator a miner draws from: ``generator`` if given, a CPU generator seeded with ``seed``, or None
    (torch's global RNG, so ``torch.manual_seed`` makes mining reproducible)."""
    if generator is not None:
        return generator
    if seed is not None:
        return torch.Generator().manual_seed(seed)
    return None


def choose_without_replacement(n: int, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` distinct ints from ``range(n)``, uniformly, in increasing order, without a ``randperm(n)`` when
    ``k << n`` (``n`` can be the number of all triplets of a batch, hundreds of millions)."""
    k = min(k, n)
    if k * 4 >= n:
        return torch.randperm(n, generator=generator)[:k].sort().values
    chosen = torch.empty(0, dtype=torch.long)
    while len(chosen) < k:
        draws = torch.randint(n, (k + k // 4 + 16,), generator=generator)
        chosen = torch.unique(torch.cat([chosen, draws]))
    # draws with replacement give a uniformly random set of distinct values; a random k of them stay uniform
    keep = torch.randperm(len(chosen), generator=generator)[:k]
    return chosen[keep].sort().values
