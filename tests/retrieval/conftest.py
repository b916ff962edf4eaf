"""Slow, obviously-correct reference implementations (Python loops, float64) for the retrieval tests.

They follow the definitions written in OML's documentation (and PML's for the standard metrics), independently of
the vectorised code under test. Exposed as the ``ref`` fixture (test modules cannot import a conftest).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest


class Reference:
    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> float:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if metric == "euclidean":
            return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
        dot = sum(x * y for x, y in zip(a, b))
        if metric == "cosine":
            return 1.0 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
        return -dot

    @staticmethod
    def knn(queries: Any, gallery: Any, k: int, metric: str = "euclidean", excluded: Any = None) -> list[list[tuple[float, int]]]:
        """Per query, the k nearest (distance, gallery index), sorted by (distance, index); ``excluded(i, j)`` skips."""
        out = []
        for i, q in enumerate(np.asarray(queries)):
            cands = [
                (Reference.distance(q, g, metric), j)
                for j, g in enumerate(np.asarray(gallery))
                if excluded is None or not excluded(i, j)
            ]
            out.append(sorted(cands)[:k])
        return out

    # ------------------------------------------------------------------ OML's per-query metrics
    @staticmethod
    def cmc(correct: list[bool], n_gt: int, k: int) -> float:
        if not correct:
            return 1.0 if n_gt == 0 else 0.0
        return 1.0 if any(correct[:k]) else 0.0

    @staticmethod
    def precision(correct: list[bool], n_gt: int, k: int) -> float:
        if not correct:
            return 1.0 if n_gt == 0 else 0.0
        kk = min(k, len(correct))
        hits = sum(correct[:kk])
        denominator = min(n_gt, kk)
        return hits / denominator if denominator else float("nan")

    @staticmethod
    def map(correct: list[bool], n_gt: int, k: int) -> float:
        if not correct:
            return 1.0 if n_gt == 0 else 0.0
        kk = min(k, len(correct))
        hits = sum(correct[:kk])
        if hits == 0:
            return 0.0
        total = 0.0
        for i in range(kk):
            if correct[i]:
                total += sum(correct[: i + 1]) / (i + 1)
        return total / hits

    # ------------------------------------------------------------------ standard (PML) per-query metrics
    @staticmethod
    def map_at_r(correct: list[bool], n_gt: int) -> float:
        if n_gt == 0:
            return float("nan")
        total = 0.0
        for i in range(min(n_gt, len(correct))):
            if correct[i]:
                total += sum(correct[: i + 1]) / (i + 1)
        return total / n_gt

    @staticmethod
    def r_precision(correct: list[bool], n_gt: int) -> float:
        return float("nan") if n_gt == 0 else sum(correct[:n_gt]) / n_gt

    @staticmethod
    def mrr(correct: list[bool], n_gt: int, k: int) -> float:
        if n_gt == 0:
            return float("nan")
        for i, c in enumerate(correct[:k]):
            if c:
                return 1.0 / (i + 1)
        return 0.0

    # ------------------------------------------------------------------ fnmr, pcf
    @staticmethod
    def fnmr(pos: list[float], neg: list[float], fmr: float) -> float:
        """numpy's linear quantile written out: v[lo] + (h - lo) * (v[lo + 1] - v[lo]), h = (n - 1) * fmr."""
        values = sorted(neg)
        h = (len(values) - 1) * fmr
        lo = math.floor(h)
        hi = min(lo + 1, len(values) - 1)
        threshold = values[lo] + (h - lo) * (values[hi] - values[lo])
        return sum(1 for p in pos if p >= threshold) / len(pos)

    @staticmethod
    def pcf(embeddings: Any, variance: float) -> float:
        x = np.asarray(embeddings, dtype=np.float64)
        x = x - x.mean(axis=0)
        singular = np.linalg.svd(x, compute_uv=False)
        explained = singular**2 / (len(x) - 1)
        ratios = explained / explained.sum()
        # the largest n with sum_{i < n} ratio_i <= variance
        n_components, running = 1, 0.0
        for ratio in ratios:
            running += ratio
            if running <= variance:
                n_components += 1
        return n_components / x.shape[1]

    # ------------------------------------------------------------------ the whole of OML's EmbeddingMetrics
    @staticmethod
    def embedding_metrics(
        embeddings: Any,
        labels: Any,
        is_query: Any,
        is_gallery: Any,
        *,
        categories: Any = None,
        sequences: Any = None,
        cmc_top_k: tuple[int, ...] = (1, 5),
        precision_top_k: tuple[int, ...] = (5,),
        map_top_k: tuple[int, ...] = (5,),
        fmr_vals: tuple[float, ...] = (),
        pcf_variance: tuple[float, ...] = (),
        metric: str = "euclidean",
    ) -> dict[Any, dict[str, dict[Any, float]]]:
        emb = np.asarray(embeddings, dtype=np.float64)
        labels = list(np.asarray(labels).tolist())
        queries = [i for i, q in enumerate(is_query) if q]
        gallery = [j for j, g in enumerate(is_gallery) if g]
        max_k = max([*cmc_top_k, *precision_top_k, *map_top_k])

        def excluded(i: int, j: int) -> bool:
            return i == j or (sequences is not None and sequences[i] == sequences[j])

        per_query: list[dict[str, dict[Any, float]]] = []
        has_gt: list[bool] = []
        pos: list[float] = []
        neg: list[float] = []
        for i in queries:
            cands = []
            n_gt = 0
            for gpos, j in enumerate(gallery):
                if excluded(i, j):
                    continue
                d = Reference.distance(emb[i], emb[j], metric)
                cands.append((d, gpos, labels[j] == labels[i]))
                n_gt += labels[j] == labels[i]
                (pos if labels[j] == labels[i] else neg).append(d)
            cands.sort()
            correct = [c for _, _, c in cands[:max_k]]
            values: dict[str, dict[Any, float]] = {
                "cmc": {k: Reference.cmc(correct, n_gt, k) for k in cmc_top_k},
                "precision": {k: Reference.precision(correct, n_gt, k) for k in precision_top_k},
                "map": {k: Reference.map(correct, n_gt, k) for k in map_top_k},
            }
            per_query.append({name: v for name, v in values.items() if v})
            has_gt.append(n_gt > 0)
        any_lone = not all(has_gt)

        def mean(rows: list[dict[str, dict[Any, float]]], scored: list[bool]) -> dict[str, Any]:
            # queries without any relevant gallery item are left out of the averages, and counted
            kept = [r for r, s in zip(rows, scored) if s]
            out = {
                name: {k: float(np.mean([r[name][k] for r in kept])) if kept else float("nan") for k in rows[0][name]}
                for name in rows[0]
            }
            if any_lone:
                out["queries_without_gt"] = scored.count(False)
            return out

        out: dict[Any, dict[str, Any]] = {"OVERALL": mean(per_query, has_gt)}
        if pcf_variance:
            out["OVERALL"]["pcf"] = {v: Reference.pcf(emb, v) for v in pcf_variance}
        if categories is not None:
            seen: list[Any] = []
            for i in queries:
                if categories[i] not in seen:
                    seen.append(categories[i])
            for cat in seen:
                members_q = [n for n, i in enumerate(queries) if categories[i] == cat]
                out[cat] = mean([per_query[n] for n in members_q], [has_gt[n] for n in members_q])
                if pcf_variance:
                    members = [i for i in range(len(emb)) if categories[i] == cat]
                    out[cat]["pcf"] = {v: Reference.pcf(emb[members], v) for v in pcf_variance}
        if fmr_vals:
            out["OVERALL"]["fnmr@fmr"] = {f: Reference.fnmr(pos, neg, f) for f in fmr_vals}
        return out


@pytest.fixture
def ref() -> type[Reference]:
    return Reference


def assert_metrics_close(got: Any, expected: Any, atol: float = 1e-6, path: str = "$") -> None:
    """Nested dicts of numbers/tensors equal to ``atol`` (NaN equals NaN), with the same keys."""
    if isinstance(expected, dict):
        assert isinstance(got, dict), f"{path}: expected a dict, got {type(got).__name__}"
        assert list(map(str, got)) == list(map(str, expected)), f"{path}: keys {list(got)} != {list(expected)}"
        for (gk, gv), ek in zip(got.items(), expected):
            assert_metrics_close(gv, expected[ek], atol, f"{path}/{gk}")
        return
    g, e = float(got), float(expected)
    assert (math.isnan(g) and math.isnan(e)) or abs(g - e) <= atol, f"{path}: {g} != {e}"


@pytest.fixture
def metrics_close() -> Any:
    return assert_metrics_close
