"""Decision thresholds for verification ("same identity or not?") from the pairs of a validation set.

A pair is declared *same* when its distance is strictly below the threshold ``t`` - the convention of
FNMR@FMR (``fnmr = mean(pos >= t)``). :func:`calibrate_thresholds` reports

- for each target FMR ``f``: ``t = quantile(neg, f)`` and the FNMR there, exactly as ``fnmr_at_fmr`` computes them
  (the same streaming pass: the ``Q x G`` distances are never held);
- the threshold of the best F1 of "same" decisions over all pairs (positives are the true "same" pairs), with its
  FMR and FNMR: a grid of ``bins`` thresholds first, then one more pass that keeps only the distances of the bins
  that could hold a better threshold (an upper bound of F1 per bin says which) makes it exact;
- the curves FMR(t) and FNMR(t) on that grid, for a plot.

Memory is bounded: a histogram of ``bins`` counts for positives and for all pairs, next to FnmrStream's windows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor

from oml_core.retrieval._fnmr import FnmrStream, check_fmr_vals
from oml_core.retrieval._search import Groups, RetrievalError, Search, exclusion_groups

DEFAULT_FMR_VALS: tuple[float, ...] = (0.1, 0.01, 0.001)
DEFAULT_BINS = 4096
#: at most this many pairs are kept to make the best F1 exact (else it is the best over the grid of ``bins``)
REFINE_MAX_PAIRS = 2**24
#: rows of a block turned into final distances at a time (keeps the temporary small)
_ROWS_PER_SLICE = 256


@attrs.frozen(kw_only=True)
class Calibration:
    """What :func:`calibrate_thresholds` found; ``as_json()`` is the content of ``RUN/calibration.json``."""

    distance: str
    thresholds: tuple[dict[str, float], ...]
    best_f1: dict[str, float]
    n_positive_pairs: int
    n_negative_pairs: int
    grid: np.ndarray = attrs.field(eq=False, repr=False)  # (B + 1,) thresholds of the curves
    fmr_curve: np.ndarray = attrs.field(eq=False, repr=False)  # FMR at each grid threshold
    fnmr_curve: np.ndarray = attrs.field(eq=False, repr=False)

    @property
    def threshold(self) -> float:
        """The default decision threshold: the best-F1 one."""
        return float(self.best_f1["threshold"])

    def as_json(self) -> dict[str, Any]:
        return {
            "distance": self.distance,
            "thresholds": [dict(t) for t in self.thresholds],
            "best_f1": dict(self.best_f1),
            "threshold": self.threshold,
            "n_positive_pairs": self.n_positive_pairs,
            "n_negative_pairs": self.n_negative_pairs,
        }


class _PairHistogram:
    """Search hook: counts of all (not excluded) pairs and of positive pairs per bin of final distance. It must run
    before FnmrStream's hook, which overwrites the positives of the block."""

    def __init__(self, search: Search, positives: Groups, lo: float, hi: float, bins: int) -> None:
        self.search, self.positives = search, positives
        self.edges = np.linspace(lo, hi, bins + 1)
        self.all_counts = np.zeros(bins, dtype=np.int64)
        self.pos_counts = np.zeros(bins, dtype=np.int64)

    def _add(self, counts: np.ndarray, final: np.ndarray) -> None:
        lo, hi = self.edges[0], self.edges[-1]
        # np.histogram's bins are [a, b) except the last; values outside [lo, hi] cannot occur (bounds are proven),
        # clip guards against rounding at the ends
        counts += np.histogram(np.clip(final, lo, hi), bins=len(counts), range=(lo, hi))[0]

    def hook(self, start: int, stop: int, block: Tensor) -> None:
        rows, cols = self.positives.pairs(start, stop)
        pos = self.search.to_final(block[rows.to(block.device), cols.to(block.device)])
        pos = pos[torch.isfinite(pos)]
        self._add(self.pos_counts, pos.detach().cpu().numpy())
        for first in range(0, stop - start, _ROWS_PER_SLICE):
            part = block[first : first + _ROWS_PER_SLICE]
            values = part[torch.isfinite(part)]
            self._add(self.all_counts, self.search.to_final(values).detach().cpu().numpy())


class _RangeValues:
    """Search hook of the refining pass: the final distances of positive and of negative pairs in ``[a, b)``."""

    def __init__(self, search: Search, positives: Groups, a: float, b: float) -> None:
        self.search, self.positives, self.a, self.b = search, positives, a, b
        self.pos: list[np.ndarray] = []
        self.all: list[np.ndarray] = []

    def _inside(self, final: np.ndarray) -> np.ndarray:
        return final[(final >= self.a) & (final < self.b)]

    def hook(self, start: int, stop: int, block: Tensor) -> None:
        rows, cols = self.positives.pairs(start, stop)
        pos = self.search.to_final(block[rows.to(block.device), cols.to(block.device)])
        self.pos.append(self._inside(pos[torch.isfinite(pos)].detach().cpu().numpy()))
        for first in range(0, stop - start, _ROWS_PER_SLICE):
            part = block[first : first + _ROWS_PER_SLICE]
            self.all.append(self._inside(self.search.to_final(part[torch.isfinite(part)]).detach().cpu().numpy()))

    def sorted_values(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted positive and negative distances (negatives: all minus positives, as multisets)."""
        pos = np.sort(np.concatenate(self.pos)) if self.pos else np.empty(0)
        every = np.sort(np.concatenate(self.all)) if self.all else np.empty(0)
        # remove one occurrence of each positive value from the sorted multiset of all values
        keep = np.ones(len(every), dtype=bool)
        values, counts = np.unique(pos, return_counts=True)
        first = np.searchsorted(every, values, side="left")
        for start, count in zip(first.tolist(), counts.tolist()):
            keep[start : start + count] = False
        return pos, every[keep]


def _f1(tp: np.ndarray, fp: np.ndarray, n_pos: int) -> np.ndarray:
    """F1 of "same" decisions with ``tp`` genuine and ``fp`` impostor pairs accepted (2TP + FP + FN = TP + FP + P)."""
    return 2 * tp / np.maximum(tp + fp + n_pos, 1)


def _refine_best_f1(
    search: Search, positives: Groups, edges: np.ndarray, tp: np.ndarray, fp: np.ndarray, n_pos: int, max_values: int
) -> tuple[float, float, int, int] | None:
    """The exact best F1 over every threshold, or None when the bins that could beat the grid hold too many pairs.

    Inside bin i, F1 is at most ``2 TP(e[i+1]) / (TP(e[i+1]) + FP(e[i]) + P)``; only the bins whose bound beats the
    grid's best can hold a better threshold, so one more pass collects the distances of those bins alone."""
    grid_best = float(_f1(tp, fp, n_pos).max())
    bound = _f1(tp[1:], fp[:-1], n_pos)
    candidates = np.flatnonzero(bound > grid_best)
    if len(candidates) == 0:
        return None
    first, last = int(candidates[0]), int(candidates[-1]) + 1
    if (tp[last] - tp[first]) + (fp[last] - fp[first]) > max_values:
        return None
    collector = _RangeValues(search, positives, float(edges[first]), float(edges[last]))
    search.run(None, hooks=[collector.hook])
    pos, neg = collector.sorted_values()
    thresholds = np.unique(np.concatenate([pos, neg, [edges[last]]]))
    tp_t = tp[first] + np.searchsorted(pos, thresholds, side="left")
    fp_t = fp[first] + np.searchsorted(neg, thresholds, side="left")
    f1 = _f1(tp_t, fp_t, n_pos)
    best = int(np.argmax(f1))
    if f1[best] <= grid_best:
        return None
    return float(thresholds[best]), float(f1[best]), int(tp_t[best]), int(fp_t[best])


def _distance_bounds(search: Search, queries: Tensor, gallery: Tensor) -> tuple[float, float]:
    """Bounds of every possible final distance (triangle / Cauchy-Schwarz inequalities), with a little slack."""
    if search.metric == "cosine":
        return 0.0, 2.0
    q_norm = float(queries.float().norm(dim=1).max()) if len(queries) else 0.0
    g_norm = float(gallery.float().norm(dim=1).max()) if len(gallery) else 0.0
    bound = (q_norm + g_norm) * 1.0001 + 1e-6
    return (0.0, bound) if search.metric == "euclidean" else (-q_norm * g_norm * 1.0001 - 1e-6, q_norm * g_norm * 1.0001 + 1e-6)


def calibrate_thresholds(
    queries: Tensor,
    gallery: Tensor,
    query_labels: Any,
    gallery_labels: Any,
    fmr_vals: Sequence[float] = DEFAULT_FMR_VALS,
    *,
    metric: str = "euclidean",
    bins: int = DEFAULT_BINS,
    query_ids: Any = None,
    gallery_ids: Any = None,
    query_sequences: Any = None,
    gallery_sequences: Any = None,
    chunk_size: int | None = None,
) -> Calibration:
    """Thresholds at the target FMRs and at the best F1 over every (query, gallery) pair, in one streaming pass.

    Pairs of the same id (or sequence) are excluded; pairs with equal labels are positives, all others negatives.

    Example:
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
        >>> cal = calibrate_thresholds(x, x, [0, 0, 1, 1], [0, 0, 1, 1], (0.5,), query_ids=range(4), gallery_ids=range(4))
        >>> cal.thresholds[0]["threshold"], cal.n_positive_pairs, cal.n_negative_pairs
        (4.0, 4, 8)
    """
    fmr_vals = check_fmr_vals(fmr_vals, "fmr values")
    if not isinstance(bins, int) or bins < 2:
        raise RetrievalError(f"bins must be an integer >= 2, got {bins!r}")
    exclude = exclusion_groups(
        query_ids=None if query_ids is None else list(query_ids),
        gallery_ids=None if gallery_ids is None else list(gallery_ids),
        query_sequences=query_sequences,
        gallery_sequences=gallery_sequences,
    )
    search = Search(queries, gallery, metric=metric, chunk_size=chunk_size, exclude=exclude)
    positives = Groups.build(query_labels, gallery_labels, what="labels")
    lo, hi = _distance_bounds(search, torch.as_tensor(queries), torch.as_tensor(gallery))
    histogram = _PairHistogram(search, positives, lo, hi, bins)
    stream = FnmrStream(search, positives, fmr_vals)
    search.run(None, hooks=[histogram.hook, stream.hook])  # histogram first: the stream overwrites positives
    fnmrs = stream.result()
    n_pos, n_neg = stream.n_pos, stream.n_neg
    if n_pos == 0 or n_neg == 0:
        raise RetrievalError(
            f"calibration needs positive and negative pairs, found {n_pos} positive and {n_neg} negative pairs "
            "(the validation identities need at least two images of one label, and two labels)"
        )
    neg_counts = histogram.all_counts - histogram.pos_counts
    # "same" iff d < edge: the pairs below edge i are those of bins 0..i-1
    tp = np.concatenate([[0], np.cumsum(histogram.pos_counts)])
    fp = np.concatenate([[0], np.cumsum(neg_counts)])
    f1 = _f1(tp, fp, n_pos)
    best = int(np.argmax(f1))
    fmr_curve, fnmr_curve = fp / n_neg, (n_pos - tp) / n_pos
    thresholds = tuple(
        {"fmr": f, "threshold": float(stream.thresholds[f]), "fnmr": float(fnmrs[f])} for f in fmr_vals
    )
    best_f1 = {
        "threshold": float(histogram.edges[best]),
        "f1": float(f1[best]),
        "fmr": float(fmr_curve[best]),
        "fnmr": float(fnmr_curve[best]),
    }
    refined = _refine_best_f1(search, positives, histogram.edges, tp, fp, n_pos, REFINE_MAX_PAIRS)
    if refined is not None:
        t, value, tp_best, fp_best = refined
        best_f1 = {"threshold": t, "f1": value, "fmr": fp_best / n_neg, "fnmr": (n_pos - tp_best) / n_pos}
    return Calibration(
        distance=metric,
        thresholds=thresholds,
        best_f1=best_f1,
        n_positive_pairs=int(n_pos),
        n_negative_pairs=int(n_neg),
        grid=histogram.edges,
        fmr_curve=fmr_curve,
        fnmr_curve=fnmr_curve,
    )


def plot_calibration(calibration: Calibration, out: str) -> None:
    """A PNG of FMR and FNMR against the threshold, with the chosen thresholds marked."""
    from oml_core.retrieval.visualize import import_pyplot

    plt = import_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = calibration.grid
    ax.plot(grid, calibration.fmr_curve, label="FMR (different identities accepted)")
    ax.plot(grid, calibration.fnmr_curve, label="FNMR (same identity rejected)")
    for entry in calibration.thresholds:
        if math.isfinite(entry["threshold"]):
            ax.axvline(entry["threshold"], color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"FMR {entry['fmr']:g}", (entry["threshold"], 0.9), rotation=90, fontsize=7, color="grey")
    ax.axvline(calibration.threshold, color="red", linestyle="--", label=f"best F1 {calibration.best_f1['f1']:.3f}")
    fmr, fnmr = calibration.fmr_curve, calibration.fnmr_curve
    started, unfinished = np.flatnonzero((fmr > 0) | (fnmr < 1)), np.flatnonzero((fmr < 1) | (fnmr > 0))
    if len(started) and len(unfinished):  # zoom on where the curves move
        a, b = grid[max(started[0] - 1, 0)], grid[min(unfinished[-1] + 1, len(grid) - 1)]
        ax.set_xlim(a - 0.05 * (b - a), b + 0.05 * (b - a))
    ax.set_xlabel(f"threshold ({calibration.distance} distance; 'same' if distance < threshold)")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"{calibration.n_positive_pairs} positive / {calibration.n_negative_pairs} negative validation pairs", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
