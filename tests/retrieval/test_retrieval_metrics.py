"""Metric functions against slow loops, OML's documented examples, PML's hand-computed cases; FNMR@FMR streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import BoolTensor

from oml_core.retrieval import (
    RetrievalError,
    calc_cmc,
    calc_fnmr_at_fmr,
    calc_map,
    calc_map_at_r,
    calc_mrr,
    calc_pcf,
    calc_precision,
    calc_r_precision,
    calc_retrieval_metrics,
    fnmr_at_fmr,
)
from oml_core.retrieval import _fnmr as fnmr_module
from oml_core.retrieval._fnmr import FnmrStream
from oml_core.retrieval._search import Groups, Search


def _random_tops(seed: int, n_queries: int = 60, max_len: int = 9) -> tuple[list[torch.Tensor], list[int]]:
    generator = torch.Generator().manual_seed(seed)
    tops, n_gts = [], []
    for _ in range(n_queries):
        length = int(torch.randint(0, max_len + 1, (1,), generator=generator))
        row = torch.rand(length, generator=generator) < 0.4
        n_gt = int(row.sum()) + int(torch.randint(0, 4, (1,), generator=generator))
        tops.append(row)
        n_gts.append(n_gt)
    return tops, n_gts


def _same(got: torch.Tensor, expected: list[float]) -> None:
    e = torch.tensor(expected, dtype=torch.float64)
    g = got.double()
    assert torch.equal(torch.isnan(g), torch.isnan(e)), (got, expected)
    assert torch.allclose(g[~torch.isnan(g)], e[~torch.isnan(e)], atol=1e-6), (got, expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_oml_metrics_equal_the_slow_reference_on_random_ragged_results(ref, seed):
    tops, n_gts = _random_tops(seed)
    rows = [r.tolist() for r in tops]
    top_k = (1, 3, 5, 20)
    for k, got in zip(top_k, calc_cmc(tops, n_gts, top_k)):
        _same(got, [ref.cmc(r, n, k) for r, n in zip(rows, n_gts)])
    for k, got in zip(top_k, calc_precision(tops, n_gts, top_k)):
        _same(got, [ref.precision(r, n, k) for r, n in zip(rows, n_gts)])
    for k, got in zip(top_k, calc_map(tops, n_gts, top_k)):
        _same(got, [ref.map(r, n, k) for r, n in zip(rows, n_gts)])
    _same(calc_map_at_r(tops, n_gts), [ref.map_at_r(r, n) for r, n in zip(rows, n_gts)])
    _same(calc_r_precision(tops, n_gts), [ref.r_precision(r, n) for r, n in zip(rows, n_gts)])
    for k, got in zip(top_k, calc_mrr(tops, n_gts, top_k)):
        _same(got, [ref.mrr(r, n, k) for r, n in zip(rows, n_gts)])


def test_oml_documented_examples_and_edge_rules():
    # the examples of OML 4.0's docstrings (hand-computed there)
    tops = [BoolTensor([1, 0]), BoolTensor([0, 1, 1]), BoolTensor([0, 0]), BoolTensor([])]
    assert [t.tolist() for t in calc_cmc(tops, [2, 2, 1, 0], (1, 2))] == [[1, 0, 0, 1], [1, 1, 0, 1]]
    assert [t.tolist() for t in calc_precision(tops, [2, 3, 5, 2], (1, 2))] == [[1, 0, 0, 0], [0.5, 0.5, 0, 0]]
    tops_map = [BoolTensor([1, 0]), BoolTensor([0, 1]), BoolTensor([0, 0, 0, 0]), BoolTensor([])]
    assert [t.tolist() for t in calc_map(tops_map, [1, 1, 2, 0], (1, 2))] == [[1, 0, 0, 1], [1, 0.5, 0, 1]]
    # precision's denominator min(n_gt, k): 3 relevant items, all found, k = 5 -> 1 (not 3/5)
    assert calc_precision([BoolTensor([1, 1, 1, 0, 0])], [3], (5,))[0].tolist() == [1.0]
    # map@k is normalised by the hits in the top k: [0, 1, 0, 1] -> (1/2 + 2/4) / 2
    assert calc_map([BoolTensor([0, 1, 0, 1])], [10], (4,))[0].tolist() == [0.5]
    # a query with retrieved items but no relevant one: OML 4.0 gives 0 / 0 = NaN for precision, 0 for cmc and map
    assert math.isnan(calc_precision([BoolTensor([0, 0])], [0], (2,))[0].item())
    assert (
        calc_cmc([BoolTensor([0, 0])], [0], (2,))[0].item() == 0.0 and calc_map([BoolTensor([0, 0])], [0], (2,))[0].item() == 0.0
    )


def test_padded_input_gives_the_same_values_as_ragged_input():
    tops, n_gts = _random_tops(7)
    padded = torch.nn.utils.rnn.pad_sequence(tops, batch_first=True)
    lengths = torch.tensor([len(t) for t in tops])
    for fn in (calc_cmc, calc_precision, calc_map):
        for a, b in zip(fn(tops, n_gts, (1, 4)), fn(padded, n_gts, (1, 4), n_retrieved=lengths)):
            assert torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(a.nan_to_num(), b.nan_to_num())


class TestPMLHandComputedCases:
    """pytorch-metric-learning's tests/utils/test_calculate_accuracies.py, global averages, all queries not lone."""

    query_labels = np.array([1, 1, 2, 3, 4])
    knn_labels = np.array([[0, 1, 1, 2, 2], [1, 0, 1, 1, 3], [4, 4, 4, 4, 2], [3, 1, 3, 1, 3], [0, 0, 4, 2, 2]])
    label_counts = {1: 3, 2: 5, 3: 4, 4: 5}

    def _tops(self, same_source: bool) -> tuple[torch.Tensor, torch.Tensor]:
        knn = self.knn_labels[:, 1:] if same_source else self.knn_labels
        counts = [self.label_counts[q] - (1 if same_source else 0) for q in self.query_labels]
        return torch.from_numpy(knn == self.query_labels[:, None]), torch.tensor(counts)

    @pytest.mark.parametrize("same_source", [False, True])
    def test_precision_at_1(self, same_source):
        tops, counts = self._tops(same_source)
        expected = 0.4 if not same_source else 1.0 / 5
        assert calc_precision(tops, counts, (1,))[0].mean().item() == pytest.approx(expected, abs=1e-7)

    @pytest.mark.parametrize("same_source", [False, True])
    def test_r_precision(self, same_source):
        tops, counts = self._tops(same_source)
        per_query = [2 / 3, 2 / 3, 1 / 5, 2 / 4, 1 / 5] if not same_source else [1, 1 / 2, 1 / 4, 1 / 3, 1 / 4]
        assert calc_r_precision(tops, counts).mean().item() == pytest.approx(np.mean(per_query), abs=1e-7)

    @pytest.mark.parametrize("same_source", [False, True])
    def test_map_at_r(self, same_source):
        tops, counts = self._tops(same_source)
        if not same_source:
            per_query = [(1 / 2 + 2 / 3) / 3, (1 + 2 / 3) / 3, (1 / 5) / 5, (1 + 2 / 3) / 4, (1 / 3) / 5]
        else:
            per_query = [1, (1 / 2) / 2, (1 / 4) / 4, (1 / 2) / 3, (1 / 2) / 4]
        assert calc_map_at_r(tops, counts).mean().item() == pytest.approx(np.mean(per_query), abs=1e-7)

    def test_mrr(self):
        tops, counts = self._tops(False)
        # first relevant positions: 2, 1, 5, 1, 3
        expected = np.mean([1 / 2, 1, 1 / 5, 1, 1 / 3])
        assert calc_mrr(tops, counts, (5,))[0].mean().item() == pytest.approx(expected, abs=1e-7)

    def test_map_at_r_on_pml_faiss_example(self):
        # PML: query = arange(10), reference = arange(20) / 2; only query 1 has relevant items (R = 10)
        # relevant positions in its ranking: 1, 2, 5, 7, 9 -> MAP@R = (1 + 2/2 + 3/5 + 4/7 + 5/9) / 10, R-precision 0.5
        tops = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 0, 1, 0]], dtype=torch.bool)
        assert calc_map_at_r(tops, [10]).item() == pytest.approx((1 + 2 / 2 + 3 / 5 + 4 / 7 + 5 / 9) / 10, abs=1e-7)
        assert calc_r_precision(tops, [10]).item() == pytest.approx(0.5)


def test_calc_retrieval_metrics_by_category_equals_the_reference(ref):
    generator = torch.Generator().manual_seed(5)
    retrieved = [
        torch.randperm(12, generator=generator)[: int(torch.randint(0, 7, (1,), generator=generator))] for _ in range(30)
    ]
    gt = [torch.randperm(12, generator=generator)[: int(torch.randint(1, 4, (1,), generator=generator))] for _ in range(30)]
    categories = np.array(["shoes", "bags", "hats"])[torch.randint(0, 3, (30,), generator=generator).numpy()]
    got = calc_retrieval_metrics(
        retrieved, gt, query_categories=categories, cmc_top_k=(1, 3), precision_top_k=(3,), map_top_k=(5,)
    )
    correct = [[int(r) in set(g.tolist()) for r in row] for row, g in zip(retrieved, gt)]
    for cat in ["OVERALL", *dict.fromkeys(categories.tolist())]:
        members = [i for i in range(30) if cat == "OVERALL" or categories[i] == cat]
        for name, fn, k in (("cmc", ref.cmc, 1), ("cmc", ref.cmc, 3), ("precision", ref.precision, 3), ("map", ref.map, 5)):
            expected = np.mean([fn(correct[i], len(gt[i]), k) for i in members])
            assert float(got[cat][name][k]) == pytest.approx(expected, abs=1e-6), (cat, name, k)
    assert list(got) == ["OVERALL", *dict.fromkeys(categories.tolist())]


def test_bad_top_k_is_rejected():
    with pytest.raises(RetrievalError, match="positive integers"):
        calc_cmc([BoolTensor([1])], [1], (0,))


# ---------------------------------------------------------------------------------------------- fnmr
def test_calc_fnmr_at_fmr_documented_example_and_reference(ref):
    pos, neg = np.array([0, 0, 1, 1, 2, 2, 5, 5, 9, 9]), np.array([3, 3, 4, 4, 6, 6, 7, 7, 8, 8])
    assert calc_fnmr_at_fmr(pos, neg, (0.1, 0.5)).tolist() == pytest.approx([0.4, 0.2])
    generator = np.random.default_rng(0)
    pos, neg = generator.normal(1, 0.5, 300), generator.normal(2, 0.5, 1000)
    for f in (0.0, 0.01, 0.1, 0.37, 1.0):
        assert calc_fnmr_at_fmr(pos, neg, (f,)).item() == pytest.approx(ref.fnmr(pos.tolist(), neg.tolist(), f), abs=1e-7)


def _all_pairs(x: torch.Tensor, labels: torch.Tensor, sequences: list[str] | None = None) -> tuple[list[float], list[float]]:
    """Every non-excluded pair's float32 distance (as the GEMM computes it), split into positives and negatives."""
    d = torch.cdist(x, x).tolist()  # the same formulation as the search, so that ties and rounding match exactly
    labels_list = labels.tolist()
    pos, neg = [], []
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j or (sequences is not None and sequences[i] == sequences[j]):
                continue
            (pos if labels_list[i] == labels_list[j] else neg).append(d[i][j])
    return pos, neg


@pytest.mark.parametrize("kind", ["random", "clustered", "ties"])
@pytest.mark.parametrize("windows", ["exact", "sampled", "sampled-torch-scan"])
def test_streaming_fnmr_equals_numpy_quantile_on_all_pairs(kind, windows, monkeypatch):
    generator = torch.Generator().manual_seed(11)
    n = 300
    labels = torch.randint(0, 30, (n,), generator=generator)
    if kind == "random":
        x = torch.randn(n, 8, generator=generator)
    elif kind == "clustered":
        x = torch.randn(30, 8, generator=generator)[labels] + 0.4 * torch.randn(n, 8, generator=generator)
    else:
        x = torch.randint(0, 3, (n, 3), generator=generator).float()
        monkeypatch.setattr(fnmr_module, "COMPACT_VALUES", 500)  # many equal values: (value, count) pairs early
    sequences = [f"s{i // 4}" for i in range(n)]
    if windows.startswith("sampled"):  # force the sampled windows on this small problem
        monkeypatch.setattr(fnmr_module, "EXACT_PAIRS", 0)
        monkeypatch.setattr(fnmr_module, "SAMPLE_PAIRS", 20_000)
    if windows.endswith("torch-scan"):  # the CUDA code path, on CPU
        monkeypatch.setattr(fnmr_module, "NUMPY_SCAN", False)
    fmr_vals = (0.0, 0.001, 0.01, 0.1, 0.5, 1.0)
    ids = list(range(n))
    got = fnmr_at_fmr(
        x,
        x,
        labels,
        labels,
        fmr_vals,
        query_ids=ids,
        gallery_ids=ids,
        query_sequences=sequences,
        gallery_sequences=sequences,
        chunk_size=37,
    )
    pos, neg = _all_pairs(x, labels, sequences)
    expected = calc_fnmr_at_fmr(np.array(pos, dtype=np.float32), np.array(neg, dtype=np.float32), fmr_vals)
    assert list(got) == list(fmr_vals)
    assert list(got.values()) == pytest.approx(expected.tolist(), abs=1e-7)


def test_streaming_fnmr_recovers_when_a_window_misses(monkeypatch):
    """Windows that miss the order statistics (simulated: absurdly narrow) trigger exact extra passes."""
    generator = torch.Generator().manual_seed(3)
    n = 250
    labels = torch.randint(0, 20, (n,), generator=generator)
    x = torch.randn(n, 6, generator=generator)
    monkeypatch.setattr(fnmr_module, "WINDOW_Z", 0.0)
    search = Search(x, x, exclude=[Groups.build(torch.arange(n), torch.arange(n), what="ids")])
    stream = FnmrStream(search, Groups.build(labels, labels, what="labels"), (0.05, 0.3), exact_pairs=0, sample_pairs=5000)
    passes = []
    original = search.run
    monkeypatch.setattr(search, "run", lambda k, hooks=(): passes.append(1) or original(k, hooks))
    search.run(None, hooks=[stream.hook])
    got = stream.result()
    pos, neg = _all_pairs(x, labels)
    expected = calc_fnmr_at_fmr(np.array(pos, dtype=np.float32), np.array(neg, dtype=np.float32), (0.05, 0.3))
    assert list(got.values()) == pytest.approx(expected.tolist(), abs=1e-7)
    assert len(passes) >= 2, "a missed window must cost another pass"


def test_fnmr_is_nan_without_positives_or_negatives():
    x = torch.randn(5, 3)
    ids = list(range(5))
    assert math.isnan(fnmr_at_fmr(x, x, list(range(5)), list(range(5)), (0.1,), query_ids=ids, gallery_ids=ids)[0.1])
    assert math.isnan(fnmr_at_fmr(x, x, [0] * 5, [0] * 5, (0.1,), query_ids=ids, gallery_ids=ids)[0.1])
    with pytest.raises(RetrievalError, match=r"fmr_vals must be numbers in \[0, 1\]"):
        fnmr_at_fmr(x, x, [0] * 5, [0] * 5, (1.5,))


# ---------------------------------------------------------------------------------------------- pcf
def test_pcf_equals_the_reference_and_the_documented_example(ref):
    assert calc_pcf(torch.eye(4, 10), (0.5,)).tolist() == pytest.approx([0.2])
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(200, 12, generator=generator) @ torch.randn(12, 12, generator=generator)
    variance = (0.1, 0.5, 0.9, 0.99)
    assert calc_pcf(x, variance).tolist() == pytest.approx([ref.pcf(x.numpy(), v) for v in variance])
    few = torch.randn(5, 12, generator=generator)  # fewer items than dimensions
    assert calc_pcf(few, variance).tolist() == pytest.approx([ref.pcf(few.numpy(), v) for v in variance])
    assert math.isnan(calc_pcf(torch.ones(1, 3), (0.5,)).item())
