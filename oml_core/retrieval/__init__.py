"""Retrieval and its metrics: chunked exact kNN, ``RetrievalResults``, OML's metrics, ``EmbeddingMetrics``,
postprocessors.

Nothing here ever holds the query x gallery distance matrix: the search goes through the queries in chunks and keeps
the top-k; FNMR@FMR is computed exactly in the same pass (see ``oml_core.retrieval._fnmr``).

Example:
    >>> import torch
    >>> from oml_core.retrieval import EmbeddingMetrics
    >>> calculator = EmbeddingMetrics(cmc_top_k=(1,), precision_top_k=(), map_top_k=(2,), pcf_variance=())
    >>> calculator.setup(num_samples=4)
    >>> calculator.update_data(data_dict={"embeddings": torch.tensor([[0.0], [0.1], [5.0], [0.25]]),
    ...                                   "labels": torch.tensor([0, 0, 1, 1]), "is_query": torch.ones(4, dtype=torch.bool),
    ...                                   "is_gallery": torch.ones(4, dtype=torch.bool)})
    >>> calculator.compute_metrics()
    {'OVERALL': {'cmc': {1: tensor(0.7500)}, 'map': {2: tensor(0.7500)}}}
"""

from typing import TYPE_CHECKING, Any

from oml_core.distances import pairwise_dist
from oml_core.retrieval._search import RetrievalError
from oml_core.retrieval.knn import fnmr_at_fmr, knn
from oml_core.retrieval.metrics import (
    OVERALL_CATEGORIES_KEY,
    calc_cmc,
    calc_fnmr_at_fmr,
    calc_fnmr_at_fmr_rr,
    calc_map,
    calc_map_at_r,
    calc_mrr,
    calc_pcf,
    calc_precision,
    calc_r_precision,
    calc_retrieval_metrics,
    calc_retrieval_metrics_rr,
    calc_topological_metrics,
    reduce_metrics,
)
from oml_core.retrieval.postprocessors import (
    AdaptiveThresholding,
    AlphaQueryExpansion,
    AverageQueryExpansion,
    ConstantThresholding,
    DistanceThreshold,
)
from oml_core.retrieval.results import RetrievalResults

if TYPE_CHECKING:
    from oml_core.retrieval.embedding_metrics import AccumulatedItems, EmbeddingMetrics


def __getattr__(name: str) -> Any:
    # EmbeddingMetrics pulls in torchmetrics (~1 s): imported on first use, not when the host registers postprocessors
    if name in ("EmbeddingMetrics", "AccumulatedItems"):
        from oml_core.retrieval import embedding_metrics

        return getattr(embedding_metrics, name)
    raise AttributeError(f"module 'oml_core.retrieval' has no attribute {name!r}")


__all__ = [
    "OVERALL_CATEGORIES_KEY",
    "AccumulatedItems",
    "AdaptiveThresholding",
    "AlphaQueryExpansion",
    "AverageQueryExpansion",
    "ConstantThresholding",
    "DistanceThreshold",
    "EmbeddingMetrics",
    "RetrievalError",
    "RetrievalResults",
    "calc_cmc",
    "calc_fnmr_at_fmr",
    "calc_fnmr_at_fmr_rr",
    "calc_map",
    "calc_map_at_r",
    "calc_mrr",
    "calc_pcf",
    "calc_precision",
    "calc_r_precision",
    "calc_retrieval_metrics",
    "calc_retrieval_metrics_rr",
    "calc_topological_metrics",
    "fnmr_at_fmr",
    "knn",
    "pairwise_dist",
    "reduce_metrics",
]
