"""Validation against a store: ``RetrievalResults.from_store`` over SQLite's chunked search gives the same results
and metrics as the in-memory search, so galleries larger than memory can be evaluated."""

from __future__ import annotations

import pytest
import torch
from oml_store_sql import SqlStore

from oml_core.retrieval import RetrievalResults
from oml_core.retrieval.metrics import calc_retrieval_metrics_rr
from oml_core.testing import tiny_embeddings, tiny_labels


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_store_sql_retrieval_results_from_store_match_in_memory(tmp_path, metric):
    labels = tiny_labels(20, 12)
    embeddings = tiny_embeddings(labels, dim=16, noise=0.6)
    query_rows, gallery_rows = torch.arange(0, len(labels), 4), torch.tensor([i for i in range(len(labels)) if i % 4])
    queries, gallery = embeddings[query_rows], embeddings[gallery_rows]
    q_labels, g_labels = labels[query_rows], labels[gallery_rows]
    with SqlStore(f"sqlite:///{tmp_path}/g.db", dim=16, metric=metric, chunk_size=37) as store:  # many small chunks
        store.add(torch.arange(len(gallery)), gallery, metadata=[{"label": int(v)} for v in g_labels])
        gt_ids = [torch.nonzero(g_labels == v).flatten().tolist() for v in q_labels]
        from_store = RetrievalResults.from_store(store, queries, k=10, gt_ids=gt_ids)
    in_memory = RetrievalResults.from_embeddings_qg(
        queries, gallery, query_labels=q_labels, gallery_labels=g_labels, n_items=10, metric=metric
    )
    assert [r.tolist() for r in from_store.retrieved_ids] == [r.tolist() for r in in_memory.retrieved_ids]
    kwargs = {"cmc_top_k": (1, 5), "precision_top_k": (5,), "map_top_k": (5,)}
    got, want = calc_retrieval_metrics_rr(from_store, **kwargs), calc_retrieval_metrics_rr(in_memory, **kwargs)
    for name in want:
        for k in want[name]:
            assert torch.allclose(got[name][k], want[name][k]), (name, k)
    assert 0.0 < float(want["cmc"][1]) < 1.0  # not a trivial case
