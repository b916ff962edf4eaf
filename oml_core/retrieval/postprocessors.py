"""Postprocessors of the core: query expansion (average and alpha-weighted) and distance thresholding.

A postprocessor (``oml_core.protocols.Postprocessor``) takes :class:`RetrievalResults` and, optionally, the items
(``AccumulatedItems`` from ``EmbeddingMetrics``, or a dataset with ``extra_data["embeddings"]``) and returns new
results; it never modifies its input. They are registered by name (``query_expansion``, ``alpha_query_expansion``,
``distance_threshold``) by the built-in plugin ``oml_core.builtin.retrieval``.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor

from oml_core.retrieval._search import RetrievalError
from oml_core.retrieval.results import RetrievalResults


def _positive_int(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen(kw_only=True)
class QueryExpansionConfig:
    """Average query expansion: each query is averaged with its ``top_n`` nearest gallery items, then searched again."""

    top_n: int = attrs.field(default=3, validator=_positive_int)


@attrs.frozen(kw_only=True)
class AlphaQueryExpansionConfig:
    """Alpha-weighted query expansion: neighbours weighted by ``max(cos, 0) ** alpha`` (``alpha = 0``: average QE)."""

    top_n: int = attrs.field(default=3, validator=_positive_int)
    alpha: float = 3.0


@attrs.frozen(kw_only=True)
class DistanceThresholdConfig:
    """Drop the retrieved items farther than ``threshold`` (they count as not retrieved)."""

    threshold: float


def item_embeddings(results: RetrievalResults, dataset: Any) -> tuple[Tensor, Tensor]:
    """``(query embeddings (Q, D), gallery embeddings (G, D))`` of ``results`` from the items in ``dataset``.

    ``dataset`` is what EmbeddingMetrics passes (``AccumulatedItems``) or any dataset with ``extra_data["embeddings"]``
    (and ``get_query_ids()`` / ``get_gallery_ids()`` unless ``results`` knows its items).
    """
    embeddings = getattr(dataset, "embeddings", None)
    if embeddings is None:
        extra = getattr(dataset, "extra_data", None) or {}
        embeddings = extra.get("embeddings") if hasattr(extra, "get") else None
    if embeddings is None:
        raise RetrievalError(
            "query expansion needs the embeddings of the items: pass the AccumulatedItems that EmbeddingMetrics gives, "
            f"or a dataset with extra_data['embeddings'] (got {type(dataset).__name__})"
        )
    embeddings = torch.as_tensor(embeddings)
    query_items = results.query_item_ids if results.query_item_ids is not None else _ids(dataset, "get_query_ids")
    gallery_items = results.gallery_item_ids if results.gallery_item_ids is not None else _ids(dataset, "get_gallery_ids")
    device = embeddings.device
    return embeddings[query_items.to(device)], embeddings[gallery_items.to(device)]


def _ids(dataset: Any, method: str) -> Tensor:
    if not callable(getattr(dataset, method, None)):
        raise RetrievalError(
            f"the results do not say which items are queries and gallery, and {type(dataset).__name__} has no {method}()"
        )
    return torch.as_tensor(getattr(dataset, method)(), dtype=torch.long)


class _QueryExpansion:
    top_n: int

    def _weights(self, queries: Tensor, neighbours: Tensor, valid: Tensor) -> Tensor:
        raise NotImplementedError

    def process(self, results: RetrievalResults, dataset: Any = None) -> RetrievalResults:
        queries, gallery = item_embeddings(results, dataset)
        ids = results.padded_ids[:, : self.top_n].to(gallery.device)
        valid = ids >= 0
        neighbours = gallery[ids.clamp_min(0)]  # (Q, n, D)
        weights = self._weights(queries, neighbours, valid) * valid
        expanded = (queries + (weights.unsqueeze(-1) * neighbours).sum(dim=1)) / (1 + weights.sum(dim=1, keepdim=True))
        return results.search_again(expanded, gallery, k=max(1, results.padded_ids.shape[1]))


class AverageQueryExpansion(_QueryExpansion):
    """Average query expansion (AQE): the new query is the mean of the query and its ``top_n`` nearest gallery
    items; the gallery is then searched again with it (same metric, same exclusions).

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> x = torch.tensor([[0.0], [1.0], [2.0], [9.0]])
        >>> rr = RetrievalResults.from_embeddings(x, is_query=[True, False, False, False], is_gallery=[False, True, True, True])
        >>> items = type("Items", (), {"embeddings": x})()
        >>> AverageQueryExpansion(top_n=2).process(rr, items).retrieved_ids[0].tolist()  # query moves to 1.0
        [0, 1, 2]
    """

    def __init__(self, top_n: int = 3) -> None:
        QueryExpansionConfig(top_n=top_n)
        self.top_n = top_n

    def _weights(self, queries: Tensor, neighbours: Tensor, valid: Tensor) -> Tensor:
        return torch.ones(valid.shape, dtype=queries.dtype, device=queries.device)

    def __repr__(self) -> str:
        return f"AverageQueryExpansion(top_n={self.top_n})"


class AlphaQueryExpansion(_QueryExpansion):
    """Alpha-weighted query expansion (alpha-QE): the new query is the weighted mean of the query (weight 1) and its
    ``top_n`` nearest gallery items (weight ``max(cos(query, item), 0) ** alpha``), then searched again.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
        >>> rr = RetrievalResults.from_embeddings(x, is_query=[True, False, False], is_gallery=[False, True, True])
        >>> AlphaQueryExpansion(top_n=2, alpha=3.0).process(rr, type("Items", (), {"embeddings": x})()).retrieved_ids[0].tolist()
        [0, 1]
    """

    def __init__(self, top_n: int = 3, alpha: float = 3.0) -> None:
        AlphaQueryExpansionConfig(top_n=top_n, alpha=alpha)
        self.top_n, self.alpha = top_n, float(alpha)

    def _weights(self, queries: Tensor, neighbours: Tensor, valid: Tensor) -> Tensor:
        cos = torch.nn.functional.cosine_similarity(queries.unsqueeze(1), neighbours, dim=-1)
        return cos.clamp_min(0).pow(self.alpha)

    def __repr__(self) -> str:
        return f"AlphaQueryExpansion(top_n={self.top_n}, alpha={self.alpha})"


class DistanceThreshold:
    """Keep only the retrieved items within ``threshold`` of the query; the others count as not retrieved (a query
    may end up with nothing retrieved, which OML's metrics score 0, or 1 if it has no relevant item).

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> rr = RetrievalResults(torch.tensor([[0.5, 2.0]]), torch.tensor([[3, 1]]))
        >>> DistanceThreshold(1.0).process(rr).retrieved_ids
        (tensor([3]),)
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def process(self, results: RetrievalResults, dataset: Any = None) -> RetrievalResults:
        keep = results.padded_distances <= self.threshold
        ids = torch.where(keep, results.padded_ids, torch.full_like(results.padded_ids, -1))
        return results.with_retrieved(ids, results.padded_distances, sort=False)

    def __repr__(self) -> str:
        return f"DistanceThreshold(threshold={self.threshold})"


class ConstantThresholding:
    """OML 4's ``ConstantThresholding(th)``: keep the retrieved items strictly closer than ``th`` to their query.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> rr = RetrievalResults(torch.tensor([[0.5, 1.0, 2.0]]), torch.tensor([[3, 1, 0]]))
        >>> ConstantThresholding(th=1.0).process(rr).retrieved_ids
        (tensor([3]),)
    """

    def __init__(self, th: float) -> None:
        self.th = float(th)

    def process(self, rr: RetrievalResults, dataset: Any = None) -> RetrievalResults:
        keep = rr.padded_distances < self.th
        return rr.with_retrieved(
            torch.where(keep, rr.padded_ids, torch.full_like(rr.padded_ids, -1)), rr.padded_distances, sort=False
        )

    def __repr__(self) -> str:
        return f"ConstantThresholding(th={self.th})"


class AdaptiveThresholding:
    """OML 4's ``AdaptiveThresholding(n_std)``: cut each query's list at its first gap between consecutive distances
    larger than ``n_std`` times the average gap (over all queries); the smaller ``n_std``, the shorter the lists.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> rr = RetrievalResults(torch.tensor([[0.0, 0.1, 5.0], [1.0, 1.1, 1.2]]), torch.tensor([[0, 1, 2], [2, 1, 0]]))
        >>> [r.tolist() for r in AdaptiveThresholding(n_std=2).process(rr).retrieved_ids]
        [[0, 1], [2, 1, 0]]
    """

    def __init__(self, n_std: float) -> None:
        self.n_std = float(n_std)

    def process(self, rr: RetrievalResults, dataset: Any = None) -> RetrievalResults:
        ids, distances = rr.padded_ids, rr.padded_distances
        if ids.shape[1] < 2:
            return rr.with_retrieved(ids, distances, sort=False)
        both = (ids[:, 1:] >= 0) & (ids[:, :-1] >= 0)
        gaps = torch.where(both, distances[:, 1:] - distances[:, :-1], torch.zeros_like(distances[:, 1:]))
        if not bool(both.any()):
            return rr.with_retrieved(ids, distances, sort=False)
        mean_gap = gaps[both].double().mean()
        big = both & (gaps.double() > self.n_std * mean_gap)
        # positions after the first big gap are dropped: count the big gaps before each position
        after_gap = torch.cat([torch.zeros_like(big[:, :1]), big.cumsum(dim=1) > 0], dim=1)
        return rr.with_retrieved(torch.where(after_gap, torch.full_like(ids, -1), ids), distances, sort=False)

    def __repr__(self) -> str:
        return f"AdaptiveThresholding(n_std={self.n_std})"


__all__ = [
    "AdaptiveThresholding",
    "AlphaQueryExpansion",
    "ConstantThresholding",
    "AlphaQueryExpansionConfig",
    "AverageQueryExpansion",
    "DistanceThreshold",
    "DistanceThresholdConfig",
    "QueryExpansionConfig",
    "item_embeddings",
]
