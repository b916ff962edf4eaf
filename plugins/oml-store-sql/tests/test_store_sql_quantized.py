"""Quantised SQL stores (int8 / binary codes in a side table, exact re-scoring): contract, recall, atomicity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from oml_store_sql import SqlStore
from oml_store_sql.quantized import QuantizedSqlStore

from oml_core import Host
from oml_core.stores import StoreError, open_store
from oml_core.testing.contracts.stores import reference_topk, run_store_contract


def _clustered(n, dim, n_clusters, seed, n_queries=0):
    """bench/stores' clustered data: points and queries around shared centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32) * 2.0
    x = rng.standard_normal((n + n_queries, dim)).astype(np.float32) * 0.5 + centres[rng.integers(0, n_clusters, n + n_queries)]
    return x[:n], x[n:]


@pytest.mark.parametrize("quantize", ["sq8", "binary"])
def test_quantized_sqlite_store_passes_the_store_contract(tmp_path, quantize):
    def opener(name, dim=None, metric=None):
        return QuantizedSqlStore(f"sqlite:///{tmp_path / name}.db", quantize=quantize, dim=dim, metric=metric, chunk_size=97)

    run_store_contract(opener)


@pytest.mark.postgres
def test_quantized_postgres_store_passes_the_store_contract(postgres_url, pg_table):
    tables: dict[str, str] = {}

    def opener(name, dim=None, metric=None):
        table = tables.setdefault(name, pg_table(name))
        return QuantizedSqlStore(postgres_url, quantize="binary", table=table, dim=dim, metric=metric, index="none")

    run_store_contract(opener)


@pytest.mark.parametrize("quantize, metric", [("binary", "euclidean"), ("binary", "cosine"), ("sq8", "euclidean")])
def test_quantized_sql_recall_and_exact_distances(tmp_path, quantize, metric):
    x, queries = _clustered(20_000, 32, 200, seed=0, n_queries=40)
    with QuantizedSqlStore(f"sqlite:///{tmp_path / 'q.db'}", quantize=quantize, dim=32, metric=metric, chunk_size=4096) as store:
        store.add(np.arange(len(x)), x)
        ids, distances = store.search(queries, 10)
    exact, exact_d = reference_topk(torch.from_numpy(queries), torch.from_numpy(x), metric)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), exact[:, :10].tolist())])
    assert recall >= 0.95, recall
    hits = ids == exact[:, :10]
    # exact distances, not code distances
    assert torch.allclose(distances[hits].double(), exact_d[:, :10][hits].double(), atol=1e-4)


def test_codes_follow_every_write_and_the_choice_is_saved(tmp_path):
    x, _ = _clustered(500, 16, 10, seed=3)
    url = f"sqlite:///{tmp_path / 's.db'}"
    with SqlStore(url, dim=16) as plain:  # a plain store, later opened quantised: its codes are filled in
        plain.add(np.arange(300), x[:300])
    with open_store(Host(), url, quantize="binary") as store:
        assert isinstance(store, QuantizedSqlStore) and store.code_bytes_per_vector() * 16 == 16 * 4
        assert store.search(x[:3], 1)[0][:, 0].tolist() == [0, 1, 2]
        store.add(np.arange(300, 500), x[300:])
        with pytest.raises(StoreError, match="already stored"):
            store.add([499, 1000], x[:2])  # all or nothing: id 1000 gets neither a row nor a code
        store.delete([0])
    with open_store(Host(), url) as store:  # reopened without the option: still quantised
        assert isinstance(store, QuantizedSqlStore) and store.quantize == "binary"
        assert store.count() == 499
        found = store.search(x[:5], 1)[0][:, 0].tolist()
        assert found[0] != 0 and found[1:] == [1, 2, 3, 4]
        assert store.search(x[450:451], 1)[0].item() == 450
        import sqlalchemy as sa

        with store._read() as conn:
            codes = conn.execute(sa.text("SELECT count(*) FROM embeddings_codes")).scalar_one()
        assert codes == 499
    with pytest.raises(StoreError, match="quantised with 'binary'"):
        QuantizedSqlStore(url, quantize="sq8")
