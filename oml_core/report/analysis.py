"""The numbers behind a report's plots, from one validation's embeddings: CMC@k for every k, positive and negative
pair distances, FNMR at each FMR, a 2-D projection and the worst queries with their top-k results."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor

#: Above this many queries, pair distances (histograms, FNMR/FMR) use an evenly spaced subset of the queries.
MAX_PAIR_QUERIES = 2000
#: Above this many items, the 2-D projection shows an evenly spaced subset.
MAX_PROJECTED = 5000


@attrs.frozen
class WorstQuery:
    item: int  # row of the validation set
    label: Any
    metric_value: float
    results: list[tuple[int, float, bool]]  # (item, distance, correct) of the top-k


@attrs.frozen
class RetrievalAnalysis:
    cmc: Tensor  # (K,): CMC@1..K over the queries that have a relevant gallery item
    positive_distances: Tensor
    negative_distances: Tensor
    fmr: Tensor  # FNMR against FMR: both at the same thresholds, FMR increasing
    fnmr: Tensor
    projection: Tensor  # (M, 2)
    projection_labels: Tensor  # (M,)
    projection_explained: tuple[float, float]  # share of variance of each axis
    worst: list[WorstQuery]
    worst_metric: str
    n_queries: int
    n_gallery: int
    distance: str


def pair_distances(queries: Tensor, gallery: Tensor, distance: str) -> Tensor:
    """``(Q, G)`` distances as OML's metrics use them (``dot``: the negated dot product).

    Example:
        >>> pair_distances(torch.tensor([[0.0, 0.0]]), torch.tensor([[3.0, 4.0]]), "euclidean").tolist()
        [[5.0]]
    """
    if distance == "cosine":
        return 1 - torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T
    if distance == "dot":
        return -(queries @ gallery.T)
    return torch.cdist(queries, gallery)


def fnmr_fmr_curve(positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor]:
    """FMR (share of negative pairs at distance <= t) and FNMR (share of positive pairs at distance > t) at every
    distinct distance t, FMR increasing.

    Example:
        >>> fmr, fnmr = fnmr_fmr_curve(torch.tensor([0.1, 0.2]), torch.tensor([0.15, 0.3]))
        >>> fmr.tolist(), fnmr.tolist()
        ([0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 0.0, 0.0])
    """
    thresholds = torch.cat([positive, negative]).unique(sorted=True)
    neg_sorted, pos_sorted = negative.sort().values, positive.sort().values
    fmr = torch.searchsorted(neg_sorted, thresholds, right=True).double() / max(1, len(negative))
    fnmr = 1 - torch.searchsorted(pos_sorted, thresholds, right=True).double() / max(1, len(positive))
    return fmr, fnmr


def pca_2d(embeddings: Tensor) -> tuple[Tensor, tuple[float, float]]:
    """The first two principal components of ``embeddings`` and the share of variance each explains."""
    centred = embeddings.double() - embeddings.double().mean(0, keepdim=True)
    if centred.shape[1] < 2 or len(centred) < 2:
        padded = torch.zeros(len(centred), 2, dtype=torch.float64)
        padded[:, : min(2, centred.shape[1])] = centred[:, :2]
        return padded.float(), (1.0, 0.0)
    _, singular, vectors = torch.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    share = variance / variance.sum().clamp_min(1e-12)
    return (centred @ vectors[:2].T).float(), (float(share[0]), float(share[1]))


def _evenly(n: int, limit: int) -> Tensor:
    return torch.arange(n) if n <= limit else torch.linspace(0, n - 1, limit).round().long().unique()


def analyse(snapshot: dict[str, Any], *, top_k: int = 5, n_worst: int = 8, max_k: int = 50) -> RetrievalAnalysis:
    """Everything the report draws, from a validation snapshot (``embeddings``, ``labels``, ``is_query``,
    ``is_gallery``, optional ``sequence``, ``distance``).

    Example:
        >>> from oml_core.testing import tiny_embeddings, tiny_labels
        >>> labels = tiny_labels(4, 3)
        >>> snap = {"embeddings": tiny_embeddings(labels), "labels": labels, "is_query": torch.ones(12, dtype=torch.bool),
        ...         "is_gallery": torch.ones(12, dtype=torch.bool), "distance": "euclidean"}
        >>> analysis = analyse(snap, top_k=3, n_worst=2)
        >>> float(analysis.cmc[-1]), len(analysis.worst), len(analysis.positive_distances)
        (1.0, 2, 24)
    """
    from oml_core.retrieval import RetrievalResults

    embeddings = snapshot["embeddings"].float()
    labels = torch.as_tensor(snapshot["labels"]).long()
    is_query = torch.as_tensor(snapshot["is_query"]).bool()
    is_gallery = torch.as_tensor(snapshot["is_gallery"]).bool()
    sequences = snapshot.get("sequence")
    distance = str(snapshot.get("distance", "euclidean"))
    n_gallery = int(is_gallery.sum())
    k = max(1, min(max_k, n_gallery))
    rr = RetrievalResults.from_embeddings(
        embeddings, labels=labels, is_query=is_query, is_gallery=is_gallery, sequences=sequences, n_items=k, metric=distance
    )
    correct = rr.is_correct()  # (Q, k)
    has_relevant = rr.n_gt > 0 if rr.n_gt is not None else torch.ones(len(correct), dtype=torch.bool)
    hits = correct[has_relevant].cumsum(1) > 0
    cmc = hits.double().mean(0) if len(hits) else torch.zeros(k, dtype=torch.float64)

    query_items, gallery_items = rr.query_item_ids, rr.gallery_item_ids
    assert query_items is not None and gallery_items is not None  # from_embeddings always maps them to items
    chosen = _evenly(len(query_items), MAX_PAIR_QUERIES)
    q_items = query_items[chosen]
    dist = pair_distances(embeddings[q_items], embeddings[gallery_items], distance)
    same_label = labels[q_items][:, None] == labels[gallery_items][None, :]
    valid = q_items[:, None] != gallery_items[None, :]
    if sequences is not None:
        seq = list(map(str, sequences))
        q_seq = [seq[int(i)] for i in q_items]
        g_seq = [seq[int(i)] for i in gallery_items]
        valid &= torch.tensor([[a != b for b in g_seq] for a in q_seq], dtype=torch.bool).reshape(valid.shape)
    positive, negative = dist[valid & same_label], dist[valid & ~same_label]
    fmr, fnmr = fnmr_fmr_curve(positive, negative)

    shown = _evenly(len(embeddings), MAX_PROJECTED)
    projection, explained = pca_2d(embeddings[shown])

    metric = "map"
    worst_rows = rr.worst_queries(metric, k=min(top_k, k), n_queries=n_worst)
    from oml_core.retrieval.metrics import calc_retrieval_metrics_rr

    per_query = calc_retrieval_metrics_rr(rr, cmc_top_k=(), precision_top_k=(), map_top_k=(min(top_k, k),), reduce=False)
    values = per_query["map"][min(top_k, k)]
    worst = []
    for row in worst_rows.tolist():
        ids, dists = rr.retrieved_ids[row][:top_k], rr.distances[row][:top_k]
        results = [
            (int(gallery_items[g]), float(d), bool(correct[row, j])) for j, (g, d) in enumerate(zip(ids.tolist(), dists.tolist()))
        ]
        item = int(query_items[row])
        worst.append(WorstQuery(item=item, label=int(labels[item]), metric_value=float(values[row]), results=results))
    return RetrievalAnalysis(
        cmc=cmc.float(),
        positive_distances=positive,
        negative_distances=negative,
        fmr=fmr,
        fnmr=fnmr,
        projection=projection,
        projection_labels=labels[shown],
        projection_explained=explained,
        worst=worst,
        worst_metric=f"map@{min(top_k, k)}",
        n_queries=int(is_query.sum()),
        n_gallery=n_gallery,
        distance=distance,
    )
