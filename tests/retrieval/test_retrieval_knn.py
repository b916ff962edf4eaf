"""Chunked kNN against a slow reference: every metric, exclusions, ties, chunking, bad input, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from oml_core.retrieval import RetrievalError, knn, pairwise_dist
from oml_core.retrieval._search import TILE, Search, topk_rows


def _as_lists(distances: torch.Tensor, ids: torch.Tensor) -> list[list[tuple[float, int]]]:
    return [[(d, i) for d, i in zip(drow, irow) if i >= 0] for drow, irow in zip(distances.tolist(), ids.tolist())]


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "dot"])
@pytest.mark.parametrize("k", [1, 5, 53, 80])
def test_knn_matches_the_reference_on_random_data(ref, metric, k):
    generator = torch.Generator().manual_seed(k)
    queries, gallery = torch.randn(37, 6, generator=generator), torch.randn(53, 6, generator=generator)
    distances, ids = knn(queries, gallery, k, metric=metric, chunk_size=8)
    assert distances.shape == ids.shape == (37, min(k, 53))
    expected = ref.knn(queries, gallery, k, metric)
    got = _as_lists(distances, ids)
    assert [[i for _, i in row] for row in got] == [[i for _, i in row] for row in expected]
    assert torch.allclose(distances, torch.tensor([[d for d, _ in row] for row in expected], dtype=torch.float32), atol=1e-5)


def test_knn_breaks_ties_by_gallery_position_whatever_the_chunking(ref):
    # integer points on a small grid: many exactly equal distances, computed exactly in float32
    generator = torch.Generator().manual_seed(0)
    gallery = torch.randint(0, 3, (60, 2), generator=generator).float()
    queries = torch.randint(0, 3, (25, 2), generator=generator).float()
    expected = [[i for _, i in row] for row in ref.knn(queries, gallery, 7)]
    for chunk_size in (1, 4, 25, 1000):
        _, ids = knn(queries, gallery, 7, chunk_size=chunk_size)
        assert ids.tolist() == expected, f"chunk_size={chunk_size}"


def test_knn_tiled_top_k_with_ties_equals_the_reference(ref):
    # a gallery large enough for the two-stage (tile minimum) top-k, with many ties at the k-th place
    assert 2600 >= 16 * TILE
    generator = torch.Generator().manual_seed(1)
    gallery = torch.randint(0, 4, (2600, 3), generator=generator).float()
    queries = torch.randint(0, 4, (12, 3), generator=generator).float()
    search = Search(queries, gallery)
    assert search.tiled
    distances, ids = knn(queries, gallery, 9, chunk_size=5)
    expected = ref.knn(queries, gallery, 9)
    assert ids.tolist() == [[i for _, i in row] for row in expected]
    assert torch.allclose(distances, torch.tensor([[d for d, _ in row] for row in expected], dtype=torch.float32), atol=1e-5)


def test_topk_rows_resolves_boundary_ties_and_marks_missing_entries():
    block = torch.tensor([[3.0, 1.0, 1.0, 0.0, 1.0, float("inf")], [float("inf")] * 6])
    values, cols = topk_rows(block, 3, tiled=False)
    assert cols.tolist() == [[3, 1, 2], [-1, -1, -1]]
    assert values[0].tolist() == [0.0, 1.0, 1.0]


def test_knn_excludes_the_item_itself_and_its_sequence(ref):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(30, 4, generator=generator)
    sequences = [f"s{i // 3}" for i in range(30)]  # strings, three items per sequence
    ids_all = torch.arange(30)
    distances, ids = knn(x, x, 5, query_ids=ids_all, gallery_ids=ids_all, query_sequences=sequences, gallery_sequences=sequences)
    expected = ref.knn(x, x, 5, excluded=lambda i, j: i == j or sequences[i] == sequences[j])
    assert ids.tolist() == [[i for _, i in row] for row in expected]
    # self-exclusion only
    _, ids = knn(x, x, 3, query_ids=ids_all, gallery_ids=ids_all)
    assert not bool((ids == ids_all[:, None]).any())


def test_knn_pads_queries_with_too_few_candidates():
    x = torch.tensor([[0.0], [1.0], [2.0]])
    sequences = torch.tensor([7, 7, 8])
    distances, ids = knn(x, x, 3, query_sequences=sequences, gallery_sequences=sequences)
    assert ids.tolist() == [[2, -1, -1], [2, -1, -1], [1, 0, -1]]
    assert torch.isinf(distances[0, 1:]).all() and distances[2].tolist()[:2] == [1.0, 2.0]


def test_knn_results_do_not_depend_on_chunk_size_on_random_data():
    generator = torch.Generator().manual_seed(3)
    queries, gallery = torch.randn(101, 16, generator=generator), torch.randn(3000, 16, generator=generator)
    reference = knn(queries, gallery, 10, chunk_size=101)
    for chunk_size in (3, 64):
        got = knn(queries, gallery, 10, chunk_size=chunk_size)
        # the GEMM may round differently for another number of rows; the neighbours are the same
        assert torch.equal(got[1], reference[1]) and torch.allclose(got[0], reference[0], atol=1e-5)


def test_knn_euclidean_distances_equal_pairwise_dist():
    generator = torch.Generator().manual_seed(4)
    queries, gallery = torch.randn(40, 32, generator=generator), torch.randn(70, 32, generator=generator)
    distances, ids = knn(queries, gallery, 70)
    full = pairwise_dist(queries, gallery)
    assert torch.allclose(distances, full.gather(1, ids), atol=1e-5)
    assert torch.equal(pairwise_dist(queries, gallery), torch.cdist(queries, gallery))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: knn(torch.tensor([[float("nan")]]), torch.zeros(2, 1), 1), "NaN or infinite"),
        (lambda: knn(torch.zeros(2, 3), torch.zeros(2, 4), 1), "dimension 3"),
        (lambda: knn(torch.zeros(2, 3), torch.zeros(2, 3), 0), "k must be a positive int"),
        (lambda: knn(torch.zeros(2, 3), torch.zeros(2, 3), 1, metric="manhattan"), "metric must be one of"),
        (lambda: knn(torch.zeros(2, 3), torch.zeros(2, 3), 1, query_ids=[0, 1]), "give both query_ids and gallery_ids"),
        (lambda: knn(torch.zeros(3), torch.zeros(2, 3), 1), "2-D tensor"),
        (lambda: knn(torch.zeros(2, 3), torch.zeros(2, 3), 1, chunk_size=0), "chunk_size"),
    ],
)
def test_knn_rejects_bad_input_with_a_clear_error(call, message):
    with pytest.raises(RetrievalError, match=message):
        call()


def test_knn_and_fnmr_never_hold_the_query_x_gallery_matrix(tmp_path):
    """12k x 12k float32 distances would be 576 MB; the whole computation (top-k, FNMR@FMR, PCF) stays far below."""
    script = textwrap.dedent(
        """
        import json, resource, torch
        from oml_core.retrieval import EmbeddingMetrics

        def rss_mb():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * resource.getpagesize() / 2**20

        def peak_mb():
            # VmHWM belongs to this address space; ru_maxrss would include the forking parent's (pytest's) peak
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

        torch.manual_seed(0)
        n = 12000
        labels = torch.arange(n) // 10
        emb = torch.randn(n // 10, 16)[labels] + 0.5 * torch.randn(n, 16)
        metric = EmbeddingMetrics(cmc_top_k=(1, 5), fmr_vals=(0.1, 0.01), pcf_variance=(0.5,))
        metric.update_data(embeddings=emb, labels=labels)
        before = rss_mb()
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
            f.write("5")
        values = metric.compute_metrics()
        peak = peak_mb()
        print(json.dumps({"extra_mb": peak - before, "cmc1": float(values["OVERALL"]["cmc"][1])}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["extra_mb"] < 300, result
    assert 0.5 < result["cmc1"] <= 1.0
