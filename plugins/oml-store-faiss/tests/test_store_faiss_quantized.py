"""Quantised FAISS stores (int8 scalar and binary codes, exact re-scoring): contract, recall, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oml_store_faiss.quantized import QuantizedFaissStore

from oml_core import Host
from oml_core.stores import StoreError, open_store
from oml_core.testing.contracts.stores import reference_topk, run_store_contract


@pytest.mark.parametrize("quantize", ["sq8", "binary"])
def test_quantized_faiss_store_passes_the_store_contract(tmp_path, quantize):
    def opener(name, dim=None, metric=None):
        return QuantizedFaissStore(tmp_path / name, quantize=quantize, dim=dim, metric=metric)

    run_store_contract(opener)


def _clustered(n, dim, n_clusters, seed, n_queries=0):
    """bench/stores' clustered data: points and queries around shared centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32) * 2.0
    x = (rng.standard_normal((n + n_queries, dim)).astype(np.float32) * 0.5 + centres[rng.integers(0, n_clusters, n + n_queries)])
    return x[:n], x[n:]


@pytest.mark.parametrize("quantize, metric", [("binary", "euclidean"), ("binary", "cosine"), ("sq8", "euclidean")])
def test_quantized_search_recall_and_exact_distances(tmp_path, quantize, metric):
    x, queries = _clustered(20_000, 32, 200, seed=0, n_queries=50)
    with QuantizedFaissStore(tmp_path / "q", quantize=quantize, dim=32, metric=metric) as store:
        store.add(np.arange(len(x)), x)
        ids, distances = store.search(queries, 10)
    exact, exact_d = reference_topk(torch.from_numpy(queries), torch.from_numpy(x), metric)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), exact[:, :10].tolist())])
    assert recall >= 0.95, recall
    # the distances are exact ones (re-scored from the float vectors), not code distances
    found = torch.from_numpy(x)[ids]
    q = torch.from_numpy(queries)[:, None, :]
    if metric == "euclidean":
        true = (found - q).norm(dim=2)
    else:
        true = 1 - torch.nn.functional.cosine_similarity(found, q, dim=2)
    assert torch.allclose(distances, true, atol=1e-4)


def test_binary_codes_are_a_sixteenth_of_float32_and_the_choice_is_saved(tmp_path):
    x, _ = _clustered(3000, 64, 30, seed=2)
    url = f"faiss://{tmp_path / 'b'}"
    with open_store(Host(), url, dim=64, quantize="binary") as store:
        assert isinstance(store, QuantizedFaissStore)
        assert store.code_bytes_per_vector() * 16 == 64 * 4
        store.add(np.arange(3000), x)
    with open_store(Host(), url) as store:  # reopened without the option: still quantised
        assert isinstance(store, QuantizedFaissStore) and store.quantize == "binary" and store.count() == 3000
        ids, d = store.search(x[:5], 1)
        assert ids[:, 0].tolist() == [0, 1, 2, 3, 4] and float(d.abs().max()) < 1e-3
        store.add([10_000], x[:1] + 0.001)  # added after the codes were built: found at once
        assert 10_000 in store.search(x[:1], 2)[0][0].tolist()
        store.delete([0])
        assert 0 not in store.search(x[:1], 5)[0][0].tolist()
    with pytest.raises(StoreError, match="made with quantize='binary'"):
        open_store(Host(), url, quantize="sq8")
    with pytest.raises(StoreError, match="replaces the index"):
        QuantizedFaissStore(tmp_path / "c", quantize="sq8", dim=8, index="hnsw")
    with pytest.raises(StoreError, match="unknown quantisation"):
        QuantizedFaissStore(tmp_path / "d", quantize="pq", dim=8)
