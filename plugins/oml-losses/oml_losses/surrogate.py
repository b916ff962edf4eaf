"""A differentiable approximation of Precision@k (OML's ``SurrogatePrecision``)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from oml_miners import as_labels
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from oml_core.distances import pairwise_dist
from oml_losses._common import LossError, Reduction, check_reduction, get_reduced

__all__ = ["SurrogatePrecision", "SurrogatePrecisionConfig", "surrogate_precision"]

#: Elements of one ``(rows, B, B)`` block of ranks; larger batches are processed in row blocks with checkpointing.
DEFAULT_BLOCK_ELEMENTS = 1 << 22


def _block_precision(d: Tensor, mask: Tensor, k: int, t1: float, t2: float) -> Tensor:
    # rank[i, j] ~ number of items l closer to i than j is: sum_l sigmoid((d[i, j] - d[i, l]) / t2)
    rank = torch.sigmoid((d[:, :, None] - d[:, None, :]) / t2).sum(2)
    hits = (torch.sigmoid((k - rank) / t1) * mask).sum(1)
    return hits / mask.sum(1).clamp(max=k)


def surrogate_precision(
    distances: Tensor,
    mask_gt: Tensor,
    k: int,
    t1: float,
    t2: float,
    reduction: str = "mean",
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
) -> Tensor:
    """Smoothed Precision@k of every row of ``distances`` (``mask_gt[i, j]``: j is relevant to i), with the two
    step functions replaced by sigmoids of temperatures ``t2`` (ranking) and ``t1`` (top-k cut-off).

    The ``(B, B, B)`` rank tensor is built ``block_elements`` at a time and recomputed in backward (checkpointing),
    so memory stays ``O(B^2)``.

    Example:
        >>> d = torch.tensor([[0.0, 1.0, 5.0], [1.0, 0.0, 5.0], [5.0, 5.0, 0.0]])
        >>> mask = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]]).bool()
        >>> surrogate_precision(d, mask, k=2, t1=0.01, t2=0.01, reduction="none").round(decimals=3).tolist()
        [1.0, 1.0, 1.0]
    """
    batch = distances.shape[0]
    rows = max(1, block_elements // max(1, batch * batch))
    mask = mask_gt.to(distances.dtype)
    parts = []
    for start in range(0, batch, rows):
        d, m = distances[start : start + rows], mask[start : start + rows]
        if rows < batch and torch.is_grad_enabled() and distances.requires_grad:
            parts.append(checkpoint(_block_precision, d, m, k, t1, t2, use_reentrant=False))
        else:
            parts.append(_block_precision(d, m, k, t1, t2))
    return get_reduced(torch.cat(parts), reduction)


@attrs.frozen(kw_only=True)
class SurrogatePrecisionConfig:
    """``k`` of Precision@k; ``temperature1`` (top-k cut-off) and ``temperature2`` (ranking) of the sigmoids."""

    k: int = 5
    temperature1: float = 1.0
    temperature2: float = 0.01
    reduction: Reduction = "mean"


class SurrogatePrecision(nn.Module):
    """``1 - Precision@k`` made differentiable (https://arxiv.org/abs/2108.11179): every batch item is a query
    against all the others. Each item is its own first neighbour (distance 0), so ``k + 1`` is used internally as
    OML does. ``reduction`` applies to ``1 - precision`` of each query.

    Example:
        >>> criterion = SurrogatePrecision(k=1)
        >>> loss = criterion(torch.randn(6, 4, requires_grad=True), torch.tensor([0, 0, 1, 1, 2, 2]))
        >>> 0 <= loss.item() <= 1
        True
    """

    criterion_name = "surrogate_precision"

    def __init__(self, k: int, temperature1: float = 1.0, temperature2: float = 0.01, reduction: Reduction = "mean") -> None:
        super().__init__()
        if k < 1:
            raise LossError(f"SurrogatePrecision(k={k}): k must be at least 1")
        if temperature1 <= 0 or temperature2 <= 0:
            raise LossError(
                f"SurrogatePrecision(temperature1={temperature1}, temperature2={temperature2}): both must be positive"
            )
        check_reduction(reduction, "SurrogatePrecision")
        self.k = k + 1
        self.temperature1, self.temperature2, self.reduction = temperature1, temperature2, reduction

    def forward(self, features: Tensor, labels: Tensor | Sequence[int]) -> Tensor:
        if features.ndim != 2:
            raise LossError(f"SurrogatePrecision expects embeddings of shape (batch, dim), got {tuple(features.shape)}")
        labels_t = as_labels(labels, features.device)
        if len(labels_t) != len(features):
            raise LossError(f"SurrogatePrecision got {len(features)} embeddings but {len(labels_t)} labels")
        distances = pairwise_dist(features, features)
        mask_gt = labels_t[:, None] == labels_t[None, :]
        precision = surrogate_precision(distances, mask_gt, self.k, self.temperature1, self.temperature2, reduction="none")
        return get_reduced(1 - precision, self.reduction)

    def extra_repr(self) -> str:
        return f"k={self.k - 1}, temperature1={self.temperature1}, temperature2={self.temperature2}"
