"""The arithmetic of re-ranking the top-n of every query at once (no loop over queries).

Both functions keep the rest of each query's list behind the re-ranked top-n: the re-scored items keep the
pairwise model's exact scores, and when some score is not below the first untouched distance, the untouched
distances of that query are shifted up by one constant (so their order and gaps stay as they were).
"""

from __future__ import annotations

import torch
from torch import Tensor

from oml_core.errors import OMLError

#: Relative gap left between the largest re-scored distance and the first untouched one after a shift.
_GAP = 1e-5


def _shift_needed(max_new: Tensor, first_rest: Tensor) -> Tensor:
    """Per query, what to add to the untouched distances so that they stay strictly behind the re-scored ones."""
    gap = _GAP * torch.maximum(max_new.abs(), torch.ones_like(max_new))
    shift = max_new - first_rest + gap
    # infinite padding (ragged rows) needs no shift, and a shift must never move the rest forward
    return torch.where(torch.isfinite(first_rest) & (shift > 0), shift, torch.zeros_like(shift))


def rerank_top_n(distances: Tensor, retrieved_ids: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Re-rank the first ``n`` columns of sorted retrieval results with new ``scores`` ``(Q, n)``.

    ``distances`` and ``retrieved_ids`` are ``(Q, K)`` with rows sorted by distance (``K >= n``). Returns new
    ``(distances, retrieved_ids)``: the first ``n`` items of each row sorted by their score (ties keep the old
    order) with the scores as distances, then the other ``K - n`` items in their old order. Scores of ``+inf``
    (e.g. for padding) sort last among the top-n.

    Example:
        >>> d = torch.tensor([[0.1, 0.2, 0.5, 0.6]]); ids = torch.tensor([[3, 2, 1, 0]])
        >>> new_d, new_ids = rerank_top_n(d, ids, torch.tensor([[0.4, 0.2, 0.3]]))
        >>> new_ids.tolist(), [round(v, 4) for v in new_d[0].tolist()]
        ([[2, 1, 3, 0]], [0.2, 0.3, 0.4, 0.6])
    """
    if distances.shape != retrieved_ids.shape or distances.ndim != 2:
        raise OMLError(
            f"re-ranking: distances {tuple(distances.shape)} and ids {tuple(retrieved_ids.shape)} must be equal (Q, K)"
        )
    n = scores.shape[1] if scores.ndim == 2 else -1
    if scores.ndim != 2 or scores.shape[0] != distances.shape[0] or n > distances.shape[1]:
        raise OMLError(
            f"re-ranking: scores {tuple(scores.shape)} must be (Q, n) with n <= K for results {tuple(distances.shape)}"
        )
    scores = scores.to(distances.dtype)
    new_top, order = torch.sort(scores, dim=1, stable=True)
    top_ids = retrieved_ids[:, :n].gather(1, order)
    rest = distances[:, n:]
    if rest.shape[1] and n:
        finite_top = torch.where(torch.isfinite(new_top), new_top, torch.full_like(new_top, -torch.inf))
        rest = rest + _shift_needed(finite_top.max(dim=1).values, rest[:, 0])[:, None]
    return torch.cat([new_top, rest], dim=1), torch.cat([top_ids, retrieved_ids[:, n:]], dim=1)


def rerank_distance_matrix(distances: Tensor, top_ids: Tensor, scores: Tensor) -> Tensor:
    """OML 2.x's dense variant: ``distances`` ``(Q, G)``, the columns ``top_ids`` ``(Q, n)`` of each query's top-n
    and their new ``scores`` ``(Q, n)``. Returns a new ``(Q, G)`` matrix holding the scores at those columns and the
    other distances of each row shifted (when needed) so that they stay behind the re-scored ones.

    Example:
        >>> d = torch.tensor([[0.1, 0.5, 0.2, 0.6]])
        >>> rerank_distance_matrix(d, torch.tensor([[0, 2]]), torch.tensor([[0.9, 0.3]])).argsort(dim=1).tolist()
        [[2, 0, 1, 3]]
    """
    if distances.ndim != 2 or top_ids.shape != scores.shape or top_ids.shape[0] != distances.shape[0]:
        raise OMLError(
            f"re-ranking: expected distances (Q, G) and top_ids, scores (Q, n); got {tuple(distances.shape)}, "
            f"{tuple(top_ids.shape)}, {tuple(scores.shape)}"
        )
    n, n_galleries = top_ids.shape[1], distances.shape[1]
    scores = scores.to(distances.dtype)
    out = distances.clone()
    if 0 < n < n_galleries:
        untouched = out.scatter(1, top_ids, torch.inf)
        out = out + _shift_needed(scores.max(dim=1).values, untouched.min(dim=1).values)[:, None]
    return out.scatter(1, top_ids, scores)


__all__ = ["rerank_distance_matrix", "rerank_top_n"]
