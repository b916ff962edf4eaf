"""Retrieval metrics, vectorised over queries, with OML's exact definitions and edge rules.

Per query, ``g_1..g_K`` marks whether the ``i``-th retrieved gallery item is relevant (``K`` retrieved, possibly
fewer than asked), ``n`` is the number of relevant gallery items (``n_gt``), ``k' = min(k, K)`` and
``n_i = g_1 + ... + g_i`` (hits among the first ``i``). OML's definitions (the defaults):

- ``cmc@k = 1 if n_k' > 0 else 0``;
- ``precision@k = n_k' / min(n, k')`` - OML's denominator, which does not penalise a perfect model when ``n < k``;
  a query with retrieved items but no relevant one gives ``0 / 0 = NaN`` per query, exactly as OML 4.0 does;
- ``map@k = (1 / n_k') * sum_{i <= k'} (n_i / i) * g_i`` - normalised by the hits in the top ``k'`` (0 if none).

OML's edge rules: a query with nothing retrieved scores 1 on all three if it has no relevant item (``n = 0``) and 0
otherwise. Results are averaged over queries (``reduce=True``). Unlike OML 4.0, the averages of these three leave out
the queries that have no relevant gallery item at all (OML counts them as 0, and their precision as NaN, which made
the average NaN); a warning gives their count, which the reduced metrics return as ``queries_without_gt``.

Standard definitions, on request (the convention of pytorch-metric-learning's AccuracyCalculator, with ``R = n``;
queries without any relevant item are left out of the average, as PML leaves out "lone" queries):

- ``map_at_r = (1 / R) * sum_{i <= R} (n_i / i) * g_i`` (needs ``R`` items retrieved);
- ``r_precision = n_R / R``;
- ``mrr@k = 1 / (position of the first relevant item among the first k)``, 0 if there is none.

``fnmr@fmr`` and ``pcf`` are documented at :func:`calc_fnmr_at_fmr` and :func:`calc_pcf`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from oml_core.retrieval._search import RetrievalError

if TYPE_CHECKING:
    from oml_core.retrieval.results import RetrievalResults

OVERALL_CATEGORIES_KEY = "OVERALL"
#: How many queries had no relevant gallery item; present in reduced metrics only when some query had none.
QUERIES_WITHOUT_GT_KEY = "queries_without_gt"
#: OML's metrics that say nothing about a query without any relevant item (precision is even 0 / 0 there).
_NEED_GT: tuple[str, ...] = ("cmc", "precision", "map")
#: Metrics averaged over the queries that have a relevant item (NaN-skipping mean), the PML convention.
STANDARD_METRICS: tuple[str, ...] = ("map_at_r", "r_precision", "mrr")

TMetricsDict = dict[Any, Any]

__all__ = [
    "OVERALL_CATEGORIES_KEY",
    "QUERIES_WITHOUT_GT_KEY",
    "TMetricsDict",
    "calc_cmc",
    "calc_fnmr_at_fmr",
    "calc_map",
    "calc_map_at_r",
    "calc_mrr",
    "calc_pcf",
    "calc_precision",
    "calc_r_precision",
    "calc_retrieval_metrics",
    "calc_retrieval_metrics_rr",
    "calc_topological_metrics",
    "reduce_metrics",
]


# ---------------------------------------------------------------------------------------------- inputs
def _check_top_k(top_k: Sequence[int], name: str) -> tuple[int, ...]:
    values = tuple(top_k)
    if not values or not all(isinstance(k, int | np.integer) and not isinstance(k, bool) and k > 0 for k in values):
        raise RetrievalError(f"{name} must be a non-empty sequence of positive integers, got {top_k!r}")
    return tuple(int(k) for k in values)


def as_padded_tops(gt_tops: Tensor | Sequence[Tensor], n_retrieved: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``(correct (Q, K) bool, n_retrieved (Q,) long)`` from a padded tensor or OML's list of 1-D bool tensors."""
    if isinstance(gt_tops, Tensor):
        if gt_tops.ndim != 2:
            raise RetrievalError(f"gt_tops must be (n_queries, k) or a list of 1-D tensors, got shape {tuple(gt_tops.shape)}")
        correct = gt_tops.bool()
        lengths = n_retrieved if n_retrieved is not None else torch.full((len(correct),), correct.shape[1], dtype=torch.long)
        lengths = lengths.to(device=correct.device, dtype=torch.long)
        correct = correct & (torch.arange(correct.shape[1], device=correct.device) < lengths[:, None])
        return correct, lengths
    rows = [torch.as_tensor(t).bool().reshape(-1) for t in gt_tops]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    if not rows:
        return torch.zeros((0, 0), dtype=torch.bool), lengths
    return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=False), lengths


def _as_counts(n_gts: Tensor | Sequence[int], n: int, device: torch.device) -> Tensor:
    counts = torch.as_tensor(n_gts, dtype=torch.long).to(device).reshape(-1)
    if len(counts) != n:
        raise RetrievalError(f"n_gts has {len(counts)} entries but there are {n} queries")
    return counts


def _hits_at(cum: Tensor, k: int) -> Tensor:
    if cum.shape[1] == 0:
        return torch.zeros(cum.shape[0], dtype=cum.dtype, device=cum.device)
    return cum[:, min(k, cum.shape[1]) - 1]


def _edge_rules(values: Tensor, lengths: Tensor, n_gt: Tensor) -> Tensor:
    empty = lengths == 0
    values = torch.where(empty & (n_gt == 0), torch.ones_like(values), values)
    return torch.where(empty & (n_gt > 0), torch.zeros_like(values), values)


# ---------------------------------------------------------------------------------------------- OML's metrics
def calc_cmc(
    gt_tops: Tensor | Sequence[Tensor],
    n_gts: Tensor | Sequence[int],
    top_k: Sequence[int],
    verbose: bool = False,
    *,
    n_retrieved: Tensor | None = None,
) -> list[Tensor]:
    """``cmc@k`` of every query, for each ``k`` in ``top_k`` (OML's definition and edge rules).

    Example:
        >>> from torch import BoolTensor
        >>> calc_cmc([BoolTensor([1, 0]), BoolTensor([0, 1, 1]), BoolTensor([0, 0]), BoolTensor([])], [2, 2, 1, 0], (1, 2))
        [tensor([1., 0., 0., 1.]), tensor([1., 1., 0., 1.])]
    """
    correct, lengths = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    cum = torch.cumsum(correct, dim=1)
    out = []
    for k in _check_top_k(top_k, "top_k"):
        out.append(_edge_rules((_hits_at(cum, k) > 0).float(), lengths, n_gt))
    return out


def calc_precision(
    gt_tops: Tensor | Sequence[Tensor],
    n_gts: Tensor | Sequence[int],
    top_k: Sequence[int],
    verbose: bool = False,
    *,
    n_retrieved: Tensor | None = None,
) -> list[Tensor]:
    """``precision@k = hits in the top k' / min(n_gt, k')`` of every query (OML's definition and edge rules).

    Example:
        >>> from torch import BoolTensor
        >>> calc_precision([BoolTensor([1, 0]), BoolTensor([0, 1, 1]), BoolTensor([0, 0]), BoolTensor([])], [2, 3, 5, 2], (1, 2))
        [tensor([1., 0., 0., 0.]), tensor([0.5000, 0.5000, 0.0000, 0.0000])]
    """
    correct, lengths = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    cum = torch.cumsum(correct, dim=1)
    out = []
    for k in _check_top_k(top_k, "top_k"):
        k_eff = lengths.clamp(max=k)
        value = _hits_at(cum, k).float() / torch.minimum(n_gt, k_eff).float()
        out.append(_edge_rules(value, lengths, n_gt))
    return out


def calc_map(
    gt_tops: Tensor | Sequence[Tensor],
    n_gts: Tensor | Sequence[int],
    top_k: Sequence[int],
    verbose: bool = False,
    *,
    n_retrieved: Tensor | None = None,
) -> list[Tensor]:
    """``map@k = (1 / hits in the top k') * sum_{i <= k'} precision@i * rel_i`` of every query (OML's definition).

    Example:
        >>> from torch import BoolTensor
        >>> calc_map([BoolTensor([1, 0]), BoolTensor([0, 1]), BoolTensor([0, 0, 0, 0]), BoolTensor([])], [1, 1, 2, 0], (1, 2))
        [tensor([1., 0., 0., 1.]), tensor([1.0000, 0.5000, 0.0000, 1.0000])]
    """
    correct, lengths = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    cum = torch.cumsum(correct, dim=1)
    positions = torch.arange(1, correct.shape[1] + 1, device=correct.device)
    terms = (cum.float() / positions) * correct
    out = []
    for k in _check_top_k(top_k, "top_k"):
        hits = _hits_at(cum, k).float()
        summed = terms[:, :k].sum(dim=1)
        value = torch.where(hits > 0, summed / hits.clamp_min(1), torch.zeros_like(summed))
        out.append(_edge_rules(value, lengths, n_gt))
    return out


# ---------------------------------------------------------------------------------------------- standard ones
def _nan_without_gt(value: Tensor, n_gt: Tensor) -> Tensor:
    return torch.where(n_gt > 0, value, torch.full_like(value, float("nan")))


def calc_map_at_r(
    gt_tops: Tensor | Sequence[Tensor], n_gts: Tensor | Sequence[int], *, n_retrieved: Tensor | None = None
) -> Tensor:
    """MAP@R of every query: ``(1 / R) * sum_{i <= R} precision@i * rel_i`` with ``R = n_gt`` (NaN when ``R = 0``).

    Items not retrieved count as not relevant, so retrieve at least ``max(n_gt)`` items.

    Example:
        >>> from torch import BoolTensor
        >>> calc_map_at_r([BoolTensor([0, 1, 1, 0]), BoolTensor([1, 0, 0, 0])], [3, 1])
        tensor([0.3889, 1.0000])
    """
    correct, _ = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    cum = torch.cumsum(correct, dim=1)
    positions = torch.arange(1, correct.shape[1] + 1, device=correct.device)
    within_r = positions <= n_gt[:, None]
    summed = ((cum.double() / positions) * (correct & within_r)).sum(dim=1)
    return _nan_without_gt((summed / n_gt.clamp_min(1)).float(), n_gt)


def calc_r_precision(
    gt_tops: Tensor | Sequence[Tensor], n_gts: Tensor | Sequence[int], *, n_retrieved: Tensor | None = None
) -> Tensor:
    """R-precision of every query: hits in the top ``R`` over ``R = n_gt`` (NaN when ``R = 0``).

    Example:
        >>> from torch import BoolTensor
        >>> calc_r_precision([BoolTensor([0, 1, 1, 0]), BoolTensor([1, 0, 0, 0])], [3, 1])
        tensor([0.6667, 1.0000])
    """
    correct, _ = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    positions = torch.arange(1, correct.shape[1] + 1, device=correct.device)
    hits = (correct & (positions <= n_gt[:, None])).sum(dim=1)
    return _nan_without_gt((hits.double() / n_gt.clamp_min(1)).float(), n_gt)


def calc_mrr(
    gt_tops: Tensor | Sequence[Tensor], n_gts: Tensor | Sequence[int], top_k: Sequence[int], *, n_retrieved: Tensor | None = None
) -> list[Tensor]:
    """``mrr@k``: 1 / position of the first relevant item among the first ``k`` (0 if none; NaN when ``n_gt = 0``).

    Example:
        >>> from torch import BoolTensor
        >>> calc_mrr([BoolTensor([0, 0, 1]), BoolTensor([1, 0, 0])], [1, 2], (2, 3))
        [tensor([0., 1.]), tensor([0.3333, 1.0000])]
    """
    correct, _ = as_padded_tops(gt_tops, n_retrieved)
    n_gt = _as_counts(n_gts, len(correct), correct.device)
    found = correct.any(dim=1)
    first = (correct.int().argmax(dim=1) + 1) if correct.shape[1] else torch.ones_like(n_gt)
    out = []
    for k in _check_top_k(top_k, "top_k"):
        value = torch.where(found & (first <= k), 1.0 / first.double(), torch.zeros_like(first, dtype=torch.float64)).float()
        out.append(_nan_without_gt(value, n_gt))
    return out


# ---------------------------------------------------------------------------------------------- fnmr, pcf
def calc_fnmr_at_fmr(pos_dist: Any, neg_dist: Any, fmr_vals: Sequence[float] = (0.1,)) -> Tensor:
    """FNMR at the given FMR values from all positive and negative distances (OML's definition).

    ``threshold_f = numpy.quantile(neg_dist, f)`` (linear interpolation); ``fnmr@f = mean(pos_dist >= threshold_f)``.
    This function takes the distances in memory; :class:`EmbeddingMetrics` and :func:`fnmr_at_fmr` compute the same
    numbers in a streaming pass that never holds all of them.

    Example:
        >>> pos = np.array([0, 0, 1, 1, 2, 2, 5, 5, 9, 9]); neg = np.array([3, 3, 4, 4, 6, 6, 7, 7, 8, 8])
        >>> calc_fnmr_at_fmr(pos, neg, fmr_vals=(0.1, 0.5))
        tensor([0.4000, 0.2000])
    """
    from oml_core.retrieval._fnmr import check_fmr_vals

    vals = check_fmr_vals(fmr_vals)
    if not vals:
        raise RetrievalError("fmr_vals must not be empty")
    pos = np.asarray(pos_dist.cpu() if isinstance(pos_dist, Tensor) else pos_dist)
    neg = np.asarray(neg_dist.cpu() if isinstance(neg_dist, Tensor) else neg_dist)
    if len(pos) == 0 or len(neg) == 0:
        return torch.full((len(vals),), float("nan"))
    thresholds = np.quantile(neg, np.asarray(vals, dtype=np.float64))
    return torch.from_numpy((pos[None, :] >= thresholds[:, None]).sum(axis=1) / len(pos)).float()


def calc_pcf(embeddings: Tensor, pcf_variance: Sequence[float]) -> Tensor:
    """Principal components fraction: for each ``r`` in ``pcf_variance``, ``n / D`` where ``n`` is the number of
    principal components needed to explain more than ``r`` of the variance (OML's definition):
    the largest ``n`` with ``sum_{i < n} lambda_i / sum_i lambda_i <= r`` (eigenvalues of the covariance, descending).

    The eigenvalues come from the ``D x D`` Gram matrix in float64 (faster and more accurate than an SVD of all rows).

    Example:
        >>> calc_pcf(torch.eye(4, 10), pcf_variance=(0.5, 0.9))
        tensor([0.2000, 0.3000])
    """
    from oml_core.retrieval._fnmr import check_fmr_vals

    variance = check_fmr_vals(pcf_variance, what="pcf_variance")
    x = embeddings.detach().double()
    n, d = x.shape
    if n < 2 or d == 0:
        return torch.full((len(variance),), float("nan"))
    x = x - x.mean(dim=0, keepdim=True)
    gram = x.t() @ x if n >= d else x @ x.t()
    eigenvalues = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0)
    total = eigenvalues.sum()
    if not bool(total > 0):
        return torch.full((len(variance),), float("nan"))
    ratio_cumsum = torch.cumsum(eigenvalues / total, dim=0)
    n_components = torch.searchsorted(ratio_cumsum, torch.tensor(variance, dtype=torch.float64, device=x.device), right=True) + 1
    return (n_components.double() / d).float().cpu()


# ---------------------------------------------------------------------------------------------- collections
def calc_retrieval_metrics_rr(
    rr: RetrievalResults,
    query_categories: Any = None,
    cmc_top_k: Sequence[int] = (5,),
    precision_top_k: Sequence[int] = (5,),
    map_top_k: Sequence[int] = (5,),
    reduce: bool = True,
    verbose: bool = False,
    *,
    map_at_r: bool = False,
    r_precision: bool = False,
    mrr_top_k: Sequence[int] = (),
) -> TMetricsDict:
    """The metrics of a :class:`RetrievalResults`: ``{metric: {k: value}}``, or ``{category: {metric: {k: value}}}``
    with an ``OVERALL`` entry when ``query_categories`` (one per query) are given.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [5.0], [5.2]]), labels=torch.tensor([0, 0, 1, 1]))
        >>> calc_retrieval_metrics_rr(rr, cmc_top_k=(1,), precision_top_k=(), map_top_k=())
        {'cmc': {1: tensor(1.)}}
    """
    if rr.n_gt is None:
        raise RetrievalError("these retrieval results have no ground truth (labels or gt_ids), so metrics cannot be computed")
    correct = rr.is_correct()
    return _metrics_from_tops(
        correct,
        rr.n_retrieved,
        rr.n_gt,
        query_categories,
        cmc_top_k,
        precision_top_k,
        map_top_k,
        reduce,
        map_at_r=map_at_r,
        r_precision=r_precision,
        mrr_top_k=mrr_top_k,
    )


def calc_fnmr_at_fmr_rr(rr: RetrievalResults, fmr_vals: Sequence[float] = (0.1,)) -> TMetricsDict:
    """OML 4's FNMR@FMR of the retrieved items only: the distances of the relevant retrieved items are the
    positives, those of the others the negatives (see :func:`calc_fnmr_at_fmr`); ``{}`` when ``fmr_vals`` is empty.
    :class:`EmbeddingMetrics` (``fmr_vals=...``) computes it over all query-gallery pairs instead.

    Example:
        >>> from oml_core.retrieval import RetrievalResults
        >>> rr = RetrievalResults.from_embeddings(torch.tensor([[0.0], [0.1], [5.0], [5.2]]), labels=[0, 0, 1, 1], n_items=3)
        >>> calc_fnmr_at_fmr_rr(rr, fmr_vals=(0.5,))
        {'fnmr@fmr': {0.5: tensor(0.)}}
    """
    if not fmr_vals:
        return {}
    if rr.n_gt is None:
        raise RetrievalError("these retrieval results have no ground truth (labels or gt_ids), so FNMR@FMR cannot be computed")
    valid = rr.padded_ids >= 0
    correct = rr.is_correct()
    distances = rr.padded_distances
    values = calc_fnmr_at_fmr(distances[valid & correct], distances[valid & ~correct], fmr_vals)
    return {"fnmr@fmr": dict(zip(fmr_vals, values))}


def calc_retrieval_metrics(
    retrieved_ids: Sequence[Tensor] | Tensor,
    gt_ids: Sequence[Tensor],
    query_categories: Any = None,
    cmc_top_k: Sequence[int] = (5,),
    precision_top_k: Sequence[int] = (5,),
    map_top_k: Sequence[int] = (5,),
    reduce: bool = True,
    verbose: bool = False,
    *,
    map_at_r: bool = False,
    r_precision: bool = False,
    mrr_top_k: Sequence[int] = (),
) -> TMetricsDict:
    """OML's ``calc_retrieval_metrics``: metrics from the retrieved gallery ids and the relevant ones of each query.

    Example:
        >>> calc_retrieval_metrics([torch.tensor([1, 0]), torch.tensor([2, 3])], [torch.tensor([0]), torch.tensor([3])],
        ...                        cmc_top_k=(1, 2), precision_top_k=(), map_top_k=(2,))
        {'cmc': {1: tensor(0.), 2: tensor(1.)}, 'map': {2: tensor(0.5000)}}
    """
    from oml_core.retrieval.results import RetrievalResults

    if not isinstance(retrieved_ids, Tensor):
        retrieved_ids = list(retrieved_ids)
    distances: Any
    if isinstance(retrieved_ids, Tensor):
        distances = torch.arange(retrieved_ids.shape[1], dtype=torch.float32).expand(retrieved_ids.shape)
    else:
        distances = [torch.arange(len(r), dtype=torch.float32) for r in retrieved_ids]
    rr = RetrievalResults(distances, retrieved_ids, gt_ids, check_sorted=False)
    return calc_retrieval_metrics_rr(
        rr,
        query_categories,
        cmc_top_k,
        precision_top_k,
        map_top_k,
        reduce,
        verbose,
        map_at_r=map_at_r,
        r_precision=r_precision,
        mrr_top_k=mrr_top_k,
    )


def _metrics_from_tops(
    correct: Tensor,
    n_retrieved: Tensor,
    n_gt: Tensor,
    query_categories: Any,
    cmc_top_k: Sequence[int],
    precision_top_k: Sequence[int],
    map_top_k: Sequence[int],
    reduce: bool,
    *,
    map_at_r: bool,
    r_precision: bool,
    mrr_top_k: Sequence[int],
) -> TMetricsDict:
    kw = n_retrieved
    metrics: TMetricsDict = {}
    if cmc_top_k:
        metrics["cmc"] = dict(zip(cmc_top_k, calc_cmc(correct, n_gt, cmc_top_k, n_retrieved=kw)))
    if precision_top_k:
        metrics["precision"] = dict(zip(precision_top_k, calc_precision(correct, n_gt, precision_top_k, n_retrieved=kw)))
    if map_top_k:
        metrics["map"] = dict(zip(map_top_k, calc_map(correct, n_gt, map_top_k, n_retrieved=kw)))
    if map_at_r:
        metrics["map_at_r"] = {"R": calc_map_at_r(correct, n_gt, n_retrieved=kw)}
    if r_precision:
        metrics["r_precision"] = {"R": calc_r_precision(correct, n_gt, n_retrieved=kw)}
    if mrr_top_k:
        metrics["mrr"] = dict(zip(mrr_top_k, calc_mrr(correct, n_gt, mrr_top_k, n_retrieved=kw)))
    if bool((n_gt == 0).any()):
        metrics[QUERIES_WITHOUT_GT_KEY] = n_gt == 0
    if query_categories is not None:
        metrics = split_by_category(metrics, query_categories)
    return reduce_metrics(metrics) if reduce else metrics


def _leave_out_queries_without_gt(metrics: TMetricsDict, warn: bool) -> TMetricsDict:
    """Mark the queries without any relevant gallery item (NaN) so that averages leave them out.

    OML 4.0 averages them in: their cmc and map are 0 whatever the model does, and their precision is 0 / 0, which
    turns the average into NaN and poisons every mean a user logs."""
    lone = metrics[QUERIES_WITHOUT_GT_KEY]
    if warn:
        warnings.warn(
            f"{int(lone.sum())} of {len(lone)} queries have no relevant gallery item: they are left out of the averages "
            f"of {', '.join(_NEED_GT)} (metrics['{QUERIES_WITHOUT_GT_KEY}'] gives their count). Add gallery items of "
            "their labels, or mark them is_query=false, to score them.",
            UserWarning,
            stacklevel=4,
        )
    out = dict(metrics)
    for name in _NEED_GT:
        if name in out:
            out[name] = {k: torch.where(lone.to(v.device), torch.full_like(v, float("nan")), v) for k, v in out[name].items()}
    return out


def category_index(categories: Any) -> tuple[list[Hashable], Tensor]:
    """Distinct categories in order of first appearance, and the code of each entry (``categories[i]`` is
    ``names[codes[i]]``)."""
    import pandas as pd

    values = categories.cpu().numpy() if isinstance(categories, Tensor) else np.asarray(categories, dtype=object)
    codes, uniques = pd.factorize(values, sort=False)
    names = [u.item() if isinstance(u, np.generic) else u for u in uniques]
    return names, torch.from_numpy(codes.astype(np.int64))


def split_by_category(metrics: TMetricsDict, query_categories: Any) -> TMetricsDict:
    """``{OVERALL: metrics, <category>: metrics of its queries, ...}`` (unreduced per-query tensors are subset)."""
    names, codes = category_index(query_categories)
    out: TMetricsDict = {OVERALL_CATEGORIES_KEY: metrics}
    for i, name in enumerate(names):
        mask = codes == i
        out[name] = _take(metrics, mask)
    return out


def _take(metrics: TMetricsDict, mask: Tensor) -> TMetricsDict:
    out: TMetricsDict = {}
    for key, value in metrics.items():
        if isinstance(value, Tensor):
            out[key] = value[mask.to(value.device)] if value.ndim else value
        elif isinstance(value, dict):
            out[key] = _take(value, mask)
        else:
            out[key] = value
    return out


def reduce_metrics(metrics: TMetricsDict, _name: Any = None) -> TMetricsDict:
    """Average every per-query tensor (a NaN-skipping mean for the standard metrics, the plain mean otherwise);
    queries without any relevant gallery item are left out of the averages of cmc, precision and map, with a warning."""
    if isinstance(metrics.get(QUERIES_WITHOUT_GT_KEY), Tensor) and metrics[QUERIES_WITHOUT_GT_KEY].ndim == 1:
        metrics = _leave_out_queries_without_gt(metrics, warn=_name in (None, OVERALL_CATEGORIES_KEY))
    out: TMetricsDict = {}
    for key, value in metrics.items():
        if isinstance(value, Tensor):
            if value.ndim == 0:
                out[key] = value
            elif key == QUERIES_WITHOUT_GT_KEY:
                out[key] = value.sum()
            elif _name in STANDARD_METRICS or _name in _NEED_GT:
                out[key] = value.nanmean()
            else:
                out[key] = value.mean()
        elif isinstance(value, dict):
            out[key] = reduce_metrics(value, key)
        else:
            out[key] = value
    return out


def calc_topological_metrics(
    embeddings: Tensor, pcf_variance: Sequence[float], categories: Any = None, verbose: bool = False
) -> TMetricsDict:
    """``{"pcf": {v: value}}``, per category too (over all items of the category) when ``categories`` are given.

    Example:
        >>> calc_topological_metrics(torch.eye(4, 10), pcf_variance=(0.5,))
        {'pcf': {0.5: tensor(0.2000)}}
    """
    metrics: TMetricsDict = defaultdict(dict)
    if not pcf_variance:
        return {} if categories is None else {OVERALL_CATEGORIES_KEY: {}}
    metrics = {"pcf": dict(zip(pcf_variance, calc_pcf(embeddings, pcf_variance)))}
    if categories is None:
        return metrics
    names, codes = category_index(categories)
    out: TMetricsDict = {OVERALL_CATEGORIES_KEY: metrics}
    for i, name in enumerate(names):
        subset = embeddings[(codes == i).to(embeddings.device)]
        out[name] = {"pcf": dict(zip(pcf_variance, calc_pcf(subset, pcf_variance)))}
    return out
