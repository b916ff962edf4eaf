"""Public entry points of the chunked search: :func:`knn` and the streaming :func:`fnmr_at_fmr`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from oml_core.retrieval._fnmr import FnmrStream
from oml_core.retrieval._search import Groups, RetrievalError, Search, exclusion_groups


def knn(
    queries: Tensor,
    gallery: Tensor,
    k: int,
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    query_ids: Any = None,
    gallery_ids: Any = None,
    query_sequences: Any = None,
    gallery_sequences: Any = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest gallery items of every query: ``(distances (Q, k'), indices (Q, k'))``, ``k' = min(k, G)``.

    Exact, in chunks of ``chunk_size`` queries (default: a block of about 192 MB on CPU, 512 MB on CUDA), so memory is
    ``O(chunk_size * G + Q * k)``; it runs on the embeddings' device. ``metric`` is ``"euclidean"`` (as OML's
    ``pairwise_dist``), ``"cosine"`` (``1 - cos``) or ``"dot"`` (``-q.g``). A gallery item is skipped for a query when
    their ids are equal (``query_ids`` / ``gallery_ids``: the same item on both sides, 1-vs-rest) or their sequences
    are (``query_sequences`` / ``gallery_sequences``, any hashable values). Rows are sorted by distance, ties by
    gallery index; a query with fewer than ``k'`` candidates gets ``+inf`` / ``-1`` at the end of its row.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0]])
        >>> knn(x, x, 2, query_ids=torch.arange(3), gallery_ids=torch.arange(3))
        (tensor([[1., 3.],
                [1., 2.],
                [2., 3.]]), tensor([[1, 2],
                [0, 2],
                [1, 0]]))
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise RetrievalError(f"k must be a positive int, got {k!r}")
    exclude = exclusion_groups(
        query_ids=query_ids, gallery_ids=gallery_ids, query_sequences=query_sequences, gallery_sequences=gallery_sequences
    )
    search = Search(queries, gallery, metric=metric, chunk_size=chunk_size, exclude=exclude)
    raw, ids = search.run(k)
    return search.to_final(raw), ids


def fnmr_at_fmr(
    queries: Tensor,
    gallery: Tensor,
    query_labels: Any,
    gallery_labels: Any,
    fmr_vals: Sequence[float] = (0.1,),
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    query_ids: Any = None,
    gallery_ids: Any = None,
    query_sequences: Any = None,
    gallery_sequences: Any = None,
) -> dict[float, float]:
    """FNMR at each FMR over all (query, gallery) pairs - exactly OML's ``calc_fnmr_at_fmr`` on every positive and
    negative distance - in one streaming pass that never holds the ``Q x G`` distances (see ``_fnmr`` for how).

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
        >>> fnmr_at_fmr(x, x, [0, 0, 1, 1], [0, 0, 1, 1], (0.1,), query_ids=range(4), gallery_ids=range(4))
        {0.1: 0.5}
    """
    exclude = exclusion_groups(
        query_ids=None if query_ids is None else list(query_ids),
        gallery_ids=None if gallery_ids is None else list(gallery_ids),
        query_sequences=query_sequences,
        gallery_sequences=gallery_sequences,
    )
    search = Search(queries, gallery, metric=metric, chunk_size=chunk_size, exclude=exclude)
    stream = FnmrStream(search, Groups.build(query_labels, gallery_labels, what="labels"), fmr_vals)
    search.run(None, hooks=[stream.hook])
    return stream.result()


__all__ = ["fnmr_at_fmr", "knn"]
