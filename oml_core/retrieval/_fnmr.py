"""FNMR@FMR over every (query, gallery) pair, exact, without holding the Q x G distances.

OML's definition (``oml.functional.metrics.calc_fnmr_at_fmr``): with ``pos`` the distances of all relevant pairs
and ``neg`` those of all the other pairs (excluded pairs - the item itself, its sequence - are in neither),

    threshold_f = numpy.quantile(neg, f)        (linear interpolation between two order statistics)
    fnmr@fmr=f  = mean(pos >= threshold_f)

The quantile needs two order statistics of ``neg``, ``v[r]`` and ``v[r + 1]`` with ``r = floor((n_neg - 1) f)``.
Before the pass, a stratified sample of pairs (every query, a few random gallery items each) gives, for each ``f``,
a window ``[lo, hi]`` of raw distances that holds ``v[r]`` and ``v[r + 1]`` with overwhelming probability. The
pass (the same one that finds the top-k) counts the negatives below ``lo`` and keeps the negatives inside the window
(a few million values; compacted into (value, count) pairs if there are many more, e.g. with massive ties) and the
positives' counts below/inside/above it. Afterwards the ranks are checked: if a window missed (astronomically rare, or
adversarial data), another pass with a wider window is made, so the result is always exact. Small problems
(``Q * G <= EXACT_PAIRS``) keep every negative.

Cost per distance on CPU: two NumPy comparisons, a count and a selection per window (one comparison for a window in
the lower tail, whose candidates are few), on slices of rows that stay in the L2 cache; on CUDA, torch operations on
the whole block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import numpy as np
import torch
from torch import Tensor

from oml_core.retrieval._search import Groups, RetrievalError, Search

#: Up to this many pairs, every negative distance is kept (4 bytes each).
EXACT_PAIRS = 2**23
#: Size of the stratified sample of pairs that places the windows.
SAMPLE_PAIRS = 2**22
#: Width of a window, in standard deviations of the sample quantile (doubled design effect included).
WINDOW_Z = 7.0
SAMPLE_SEED = 20240229
#: Elements per slice of a block for the comparisons on CPU (1 MB of float32: the slice and two masks fit in L2).
SLICE_ELEMENTS = 2**18
#: A window whose upper end is below this quantile selects its candidates with one comparison instead of two.
SPARSE_FRACTION = 0.03
#: Scan CPU blocks with NumPy (False: with torch, the CUDA code path).
NUMPY_SCAN = True
#: Window values kept as they come before they are compacted into (value, count) pairs.
COMPACT_VALUES = 2**25


def check_fmr_vals(fmr_vals: Sequence[float], what: str = "fmr_vals") -> tuple[float, ...]:
    vals = tuple(float(v) for v in fmr_vals)
    bad = [v for v in vals if not 0.0 <= v <= 1.0]
    if bad:
        raise RetrievalError(f"{what} must be numbers in [0, 1], got {list(fmr_vals)}")
    return vals


class _ValueCounts:
    """A multiset of floats: kept as they come (selection by rank is then one ``partition``), and compacted into
    unique values with counts only when it grows large (many exactly tied distances)."""

    def __init__(self) -> None:
        self._raw: list[np.ndarray] = []
        self._raw_size = 0
        self._unique: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, values: Tensor | np.ndarray) -> None:
        arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else values
        if arr.size:
            self._raw.append(arr)
            self._raw_size += arr.size
            if self._raw_size > COMPACT_VALUES:
                self._compact()

    def _compact(self) -> None:
        values = np.concatenate(self._raw) if self._raw else np.empty(0, dtype=np.float32)
        unique, counts = np.unique(values, return_counts=True)
        if self._unique is not None:
            merged, inverse = np.unique(np.concatenate([self._unique[0], unique]), return_inverse=True)
            weights = np.concatenate([self._unique[1], counts])
            counts = np.bincount(inverse, weights=weights, minlength=len(merged)).astype(np.int64)
            unique = merged
        self._unique, self._raw, self._raw_size = (unique, counts), [], 0

    def total(self) -> int:
        return self._raw_size + (int(self._unique[1].sum()) if self._unique is not None else 0)

    def select(self, ranks: Sequence[int]) -> np.ndarray:
        """Values at the given 0-based ranks of the sorted multiset."""
        if self._unique is None:
            values = np.concatenate(self._raw)
            return np.partition(values, list(ranks))[list(ranks)]
        self._compact()
        assert self._unique is not None
        unique, counts = self._unique
        return unique[np.searchsorted(np.cumsum(counts), np.asarray(ranks), side="right")]

    def values_and_counts(self) -> tuple[np.ndarray, np.ndarray]:
        if self._unique is None:
            values = np.concatenate(self._raw) if self._raw else np.empty(0, dtype=np.float32)
            return values, np.ones(values.size, dtype=np.int64)
        self._compact()
        assert self._unique is not None
        return self._unique


@attrs.define
class _Window:
    lo: float  # -inf: no lower bound
    hi: float  # finite
    sparse: bool = False  # few values are <= hi: select those with one comparison, then split them at lo
    neg_below: int = 0
    pos_above: int = 0
    neg: _ValueCounts = attrs.field(factory=_ValueCounts)
    pos: _ValueCounts = attrs.field(factory=_ValueCounts)


class FnmrStream:
    """Hook for ``Search.run`` that accumulates what FNMR@FMR needs; ``result()`` gives ``{fmr: fnmr}``.

    Example:
        >>> from oml_core.retrieval._search import Search, Groups
        >>> x = torch.tensor([[0.0], [1.0], [3.0], [6.0]]); labels = torch.tensor([0, 0, 1, 1])
        >>> search = Search(x, x, exclude=[Groups.build(torch.arange(4), torch.arange(4), what="ids")])
        >>> stream = FnmrStream(search, Groups.build(labels, labels, what="labels"), (0.1,))
        >>> _ = search.run(None, hooks=[stream.hook])
        >>> stream.result()
        {0.1: 0.5}
    """

    def __init__(
        self,
        search: Search,
        positives: Groups,
        fmr_vals: Sequence[float],
        *,
        exact_pairs: int = EXACT_PAIRS,
        sample_pairs: int = SAMPLE_PAIRS,
        _windows: Sequence[tuple[float, float]] | None = None,
        _widen: float = 1.0,
        _sample: np.ndarray | None = None,
    ) -> None:
        self.search = search
        self.positives = positives
        self.fmr_vals = check_fmr_vals(fmr_vals)
        self.exact_pairs, self.sample_pairs = exact_pairs, sample_pairs
        self.n_pos = 0
        self.n_neg = 0
        #: ``{fmr: threshold}`` (final distances) filled by ``result()``: the decision threshold behind each FNMR
        self.thresholds: dict[float, float] = {}
        self._buffers: tuple[Tensor, Tensor] | None = None
        self._np_buffers: tuple[np.ndarray, np.ndarray] | None = None
        self._sample: np.ndarray | None = _sample
        finite_max = float(torch.finfo(search.dtype).max)
        self._finite_max = finite_max
        n_pairs = search.n_queries * search.n_gallery
        if _windows is not None:
            windows = list(_windows)
            self.window_of = [0] * len(self.fmr_vals) if len(windows) == 1 else list(range(len(windows)))
        elif n_pairs <= exact_pairs or not self.fmr_vals:
            windows, self.window_of = [(-math.inf, finite_max)], [0] * len(self.fmr_vals)
        else:
            windows, self.window_of = self._plan(_widen)
        self.windows = [_Window(lo, hi) for lo, hi in windows]
        if self._sample is not None and len(self._sample):
            for w in self.windows:
                w.sparse = w.lo > -math.inf and float(np.count_nonzero(self._sample <= w.hi)) <= SPARSE_FRACTION * len(
                    self._sample
                )

    # -------------------------------------------------------------------------------------------- planning
    def _draw_sample(self) -> np.ndarray:
        """Raw distances of negatives in a stratified sample: every query, ``m`` random gallery items each."""
        if self._sample is not None:
            return self._sample
        s = self.search
        m = max(1, min(s.n_gallery, -(-self.sample_pairs // max(1, s.n_queries))))
        generator = torch.Generator().manual_seed(SAMPLE_SEED)
        parts: list[np.ndarray] = []
        # a few hundred rows share their random columns: big enough operations, and still ~S / 256 distinct columns
        rows_per_chunk = 256
        for start in range(0, s.n_queries, rows_per_chunk):
            stop = min(start + rows_per_chunk, s.n_queries)
            cols = torch.randint(s.n_gallery, (m,), generator=generator)
            raw = (s.q_aug[start:stop] @ s.g_aug[cols.to(s.device)].t()).cpu().numpy()
            keep = np.ones(raw.shape, dtype=bool)
            cols_np = cols.numpy()
            for groups in [*s.exclude, self.positives]:
                keep &= groups.query_codes.numpy()[start:stop, None] != groups.gallery_codes.numpy()[None, cols_np]
            parts.append(raw[keep])
        sample = np.concatenate(parts) if parts else np.empty(0, dtype=np.float32)
        self._sample = sample
        return sample

    def _plan(self, widen: float) -> tuple[list[tuple[float, float]], list[int]]:
        sample = self._draw_sample()
        n = len(sample)
        if n < 1000:
            return [(-math.inf, self._finite_max)], [0] * len(self.fmr_vals)
        spans: list[tuple[int, int]] = []
        for f in self.fmr_vals:
            delta = widen * (WINDOW_Z * math.sqrt(max(f * (1 - f), 1.0 / n) / (n / 2)) + 8.0 / n)
            lo_rank = math.floor((f - delta) * (n - 1)) - 1
            hi_rank = math.ceil((f + delta) * (n - 1)) + 1
            spans.append((lo_rank, hi_rank))
        ranks = sorted({r for span in spans for r in span if 0 <= r < n})
        values = np.partition(sample, ranks) if ranks else sample
        bounds = []
        for lo_rank, hi_rank in spans:
            lo = float(values[lo_rank]) if lo_rank >= 0 else -math.inf
            hi = float(values[hi_rank]) if hi_rank < n else self._finite_max
            bounds.append((lo, hi))
        # merge overlapping windows, remembering which window serves which fmr value
        order = sorted(range(len(bounds)), key=lambda i: bounds[i])
        windows: list[tuple[float, float]] = []
        window_of = [0] * len(bounds)
        for i in order:
            lo, hi = bounds[i]
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(windows[-1][1], hi))
            else:
                windows.append((lo, hi))
            window_of[i] = len(windows) - 1
        return windows, window_of

    # -------------------------------------------------------------------------------------------- the pass
    def hook(self, start: int, stop: int, block: Tensor) -> None:
        s = self.search
        n_rows = stop - start
        excluded = self._count_excluded(start, stop)
        rows, cols = self.positives.pairs(start, stop)
        rows, cols = rows.to(s.device), cols.to(s.device)
        pos = block[rows, cols]
        finite = torch.isfinite(pos)
        pos = pos[finite]
        self.n_pos += len(pos)
        self.n_neg += n_rows * s.n_gallery - excluded - len(pos)
        block[rows[finite], cols[finite]] = float("inf")  # from here on the block holds negatives only

        if block.is_cuda or not NUMPY_SCAN:
            self._scan_torch(block)
        else:
            self._scan_numpy(block)
        for w in self.windows:
            w.pos_above += int((pos > w.hi).sum())
            w.pos.add(pos[(pos <= w.hi) & (pos >= w.lo)] if w.lo > -math.inf else pos[pos <= w.hi])

    def _scan_numpy(self, block: Tensor) -> None:
        """CPU: NumPy's comparisons are SIMD-vectorised (about 10x faster than torch's with a bool output here), and
        they run on slices of rows that stay in the L2 cache, so the block is read from memory once."""
        arr = block.detach().numpy()
        n_rows, n_cols = arr.shape
        rows_per_slice = max(1, SLICE_ELEMENTS // n_cols)
        size = min(rows_per_slice, n_rows) * n_cols
        if self._np_buffers is None or self._np_buffers[0].size < size:
            self._np_buffers = (np.empty(size, dtype=bool), np.empty(size, dtype=bool))
        for first in range(0, n_rows, rows_per_slice):
            flat = arr[first : first + rows_per_slice].reshape(-1)
            below, inside = (b[: flat.size] for b in self._np_buffers)
            for w in self.windows:
                hi = flat.dtype.type(w.hi)
                np.less_equal(flat, hi, out=inside)
                if w.sparse:  # few values <= hi: take them all, then split them at lo
                    candidates = flat[inside]
                    lo = flat.dtype.type(w.lo)
                    w.neg_below += int(np.count_nonzero(candidates < lo))
                    w.neg.add(candidates[candidates >= lo])
                    continue
                if w.lo > -math.inf:
                    np.less(flat, flat.dtype.type(w.lo), out=below)
                    w.neg_below += int(np.count_nonzero(below))
                    np.logical_xor(inside, below, out=inside)
                w.neg.add(flat[inside])

    def _scan_torch(self, block: Tensor) -> None:
        flat = block.reshape(-1)
        if self._buffers is None or self._buffers[0].numel() < flat.numel():
            self._buffers = (torch.empty_like(flat, dtype=torch.bool), torch.empty_like(flat, dtype=torch.bool))
        below, inside = (b[: flat.numel()] for b in self._buffers)
        for w in self.windows:
            torch.le(flat, w.hi, out=inside)
            if w.lo > -math.inf:
                torch.lt(flat, w.lo, out=below)
                w.neg_below += int(torch.count_nonzero(below))
                torch.logical_xor(inside, below, out=inside)
            w.neg.add(_masked_values(flat, inside))

    def _count_excluded(self, start: int, stop: int) -> int:
        exclude = self.search.exclude
        if not exclude:
            return 0
        pairs = [g.pairs(start, stop) for g in exclude]
        if len(pairs) == 1:
            return len(pairs[0][0])
        linear = np.concatenate([(r * self.search.n_gallery + c).numpy() for r, c in pairs])
        return int(np.unique(linear).size)

    # -------------------------------------------------------------------------------------------- result
    def result(self) -> dict[float, float]:
        """``{fmr: fnmr}``; NaN where there are no positive or no negative pairs. May make extra passes."""
        out: dict[float, float] = {}
        retry: list[float] = []
        for f, w_idx in zip(self.fmr_vals, self.window_of):
            value = self._fnmr(f, self.windows[w_idx])
            if value is None:
                retry.append(f)
            else:
                out[f] = value
        widen = 4.0
        while retry:
            if widen > 64:  # give up on windows: keep every negative (exact, memory-hungry, never seen in practice)
                stream = FnmrStream(self.search, self.positives, retry, _windows=[(-math.inf, self._finite_max)])
            else:
                stream = FnmrStream(
                    self.search,
                    self.positives,
                    retry,
                    exact_pairs=0,
                    sample_pairs=self.sample_pairs,
                    _widen=widen,
                    _sample=self._sample,
                )
            self.search.run(None, hooks=[stream.hook])
            still: list[float] = []
            for f, w_idx in zip(stream.fmr_vals, stream.window_of):
                value = stream._fnmr(f, stream.windows[w_idx])
                if value is None:
                    still.append(f)
                else:
                    out[f] = value
                    self.thresholds[f] = stream.thresholds[f]
            retry, widen = still, widen * 4
        return {f: out[f] for f in self.fmr_vals}

    def _fnmr(self, f: float, w: _Window) -> float | None:
        if self.n_pos == 0 or self.n_neg == 0:
            self.thresholds[f] = math.nan
            return math.nan
        n = self.n_neg
        virtual = (n - 1) * f  # numpy's "linear" method
        if virtual >= n - 1:
            r0 = r1 = n - 1
            gamma = 0.0
        else:
            r0 = math.floor(virtual)
            r1, gamma = r0 + 1, virtual - r0
        local = [r0 - w.neg_below, r1 - w.neg_below]
        if min(local) < 0 or max(local) >= w.neg.total():
            return None  # the window missed the order statistics
        pair = self.search.to_final(torch.from_numpy(w.neg.select(local))).numpy()
        # the same arithmetic as numpy.quantile(neg, fmr_vals) on all of neg (gamma as a float64 array: a Python float
        # would be cast to float32 by numpy)
        threshold = np.quantile(pair, np.asarray([gamma], dtype=np.float64))[0]
        self.thresholds[f] = float(threshold)
        if w.lo > -math.inf:
            # positives below the window were not counted; they must all be strictly below the threshold
            below_lo = np.nextafter(np.asarray(w.lo, dtype=pair.dtype), np.asarray(-np.inf, dtype=pair.dtype))
            if not (self.search.to_final(torch.from_numpy(np.atleast_1d(below_lo))).numpy()[0] < threshold):
                return None
        pos_values, pos_counts = w.pos.values_and_counts()
        pos_final = self.search.to_final(torch.from_numpy(pos_values)).numpy()
        n_above = int(pos_counts[pos_final >= threshold].sum()) + w.pos_above
        return float(np.float32(n_above / self.n_pos))


def _masked_values(flat: Tensor, mask: Tensor) -> Tensor:
    """``flat[mask]`` for a sparse mask: scan 8 mask bytes at a time, then select inside the groups that hit."""
    if flat.numel() % 8:
        return flat[mask]
    groups = mask.view(torch.uint8).view(torch.int64).nonzero().squeeze(1)
    if len(groups) * 8 > flat.numel() // 2:
        return flat[mask]
    return flat.view(-1, 8)[groups][mask.view(-1, 8)[groups]]
