"""The sql store on SQLite: chunked exact search, transactions, concurrency, SQL safety, URLs."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from oml_store_sql import SqlStore

from oml_core import Host
from oml_core.stores import StoreError, open_store, resolve_store_url


def _slow_topk(query, rows, k):
    """Seed 001's way, one row at a time: sqrt of summed squares, then sort."""
    scored = []
    for item_id, vector in rows:
        scored.append((math.sqrt(sum((a - b) ** 2 for a, b in zip(query, vector))), item_id))
    scored.sort()
    return [i for _, i in scored[:k]], [d for d, _ in scored[:k]]


def test_store_sql_chunked_search_equals_slow_loop_and_reads_in_chunks(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(103, 5)
    ids = torch.arange(103) * 7 + 3
    store = SqlStore(f"sqlite:///{tmp_path}/s.db", dim=5, chunk_size=10)
    store.add(ids, x)
    statements: list[str] = []
    sa.event.listen(store._engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    queries = torch.randn(4, 5)
    got_ids, got_d = store.search(queries, 6)
    selects = [s for s in statements if s.startswith("SELECT id, embedding")]
    assert len(selects) == 11, "103 rows in chunks of 10 must take 11 reads, never one read of the whole table"
    assert all("LIMIT" in s for s in selects)
    rows = list(zip(ids.tolist(), x.tolist()))
    for qi in range(4):
        want_ids, want_d = _slow_topk(queries[qi].tolist(), rows, 6)
        assert got_ids[qi].tolist() == want_ids
        assert np.allclose(got_d[qi].numpy(), want_d, atol=1e-5)
    store.close()


def test_store_sql_embeddings_are_float32_blobs_and_metadata_json(tmp_path):
    path = tmp_path / "s.db"
    with SqlStore(f"sqlite:///{path}", dim=3) as store:
        store.add([9], torch.tensor([[1.0, 2.0, 3.0]]), metadata=[{"path": "a.jpg"}])
    conn = sqlite3.connect(path)
    blob, meta = conn.execute("SELECT embedding, metadata FROM embeddings WHERE id = 9").fetchone()
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert np.frombuffer(blob, dtype=np.float32).tolist() == [1.0, 2.0, 3.0]
    assert meta == '{"path": "a.jpg"}'
    assert mode == "wal"


def test_store_sql_one_transaction_per_batch(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path}/s.db", dim=4)
    statements: list[str] = []
    sa.event.listen(store._engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    begins: list[str] = []
    sa.event.listen(store._engine, "commit", lambda conn: begins.append("commit"))
    store.add(np.arange(12_000), torch.randn(12_000, 4))  # more rows than one INSERT statement carries
    assert begins == ["commit"]
    assert sum(s.startswith("INSERT") for s in statements) == 3
    # a failing batch (its last id is stored) leaves nothing behind, even after the first INSERT chunk ran
    with pytest.raises(StoreError, match="11999"):
        store.add(np.r_[np.arange(20_000, 31_000), 11_999], torch.randn(11_001, 4))
    assert store.count() == 12_000
    store.close()


def test_store_sql_table_and_metadata_are_never_spliced_into_sql(tmp_path):
    with pytest.raises(StoreError, match="identifier"):
        SqlStore(f"sqlite:///{tmp_path}/s.db", dim=4, table="x; DROP TABLE embeddings; --")
    evil = "'); DROP TABLE embeddings; --"
    with SqlStore(f"sqlite:///{tmp_path}/s.db", dim=4) as store:
        store.add([1, 2], torch.eye(4)[:2], metadata=[{evil: evil, "k": 'a"b'}, {"k": "c"}])
        assert store.search(torch.eye(4)[:1], 2, filter={evil: evil})[0].tolist() == [[1, -1]]
        assert store.search(torch.eye(4)[:1], 2, filter={"k": 'a"b'})[0].tolist() == [[1, -1]]
        assert store.get([1])[1] == [{evil: evil, "k": 'a"b'}]
    with SqlStore(f"sqlite:///{tmp_path}/s.db") as store:
        assert store.count() == 2


def test_store_sql_filter_types_are_strict(tmp_path):
    with SqlStore(f"sqlite:///{tmp_path}/s.db", dim=2) as store:
        store.add([1, 2, 3], torch.eye(2)[[0, 1, 0]], metadata=[{"v": True}, {"v": 1}, {"v": "1"}])
        found = {key: store.search(torch.eye(2)[:1], 3, filter={"v": key})[0][0].tolist() for key in ("1",)}
        assert sorted(i for i in store.search(torch.eye(2)[:1], 3, filter={"v": True})[0][0].tolist() if i != -1) == [1]
        assert sorted(i for i in store.search(torch.eye(2)[:1], 3, filter={"v": 1})[0][0].tolist() if i != -1) == [2]
        assert sorted(i for i in found["1"] if i != -1) == [3]


def _sqlite_writer(url: str, worker: int, batches: int, batch: int) -> None:
    store = SqlStore(url, dim=8, metric="euclidean", timeout_s=30)
    rng = np.random.default_rng(worker)
    for b in range(batches):
        start = worker * 1_000_000 + b * batch
        # numpy only in a forked child: torch's OpenMP pool does not survive fork (the parent does the searching)
        store.add(np.arange(start, start + batch), rng.standard_normal((batch, 8)).astype(np.float32),
                  metadata=[{"worker": worker, "batch": b}] * batch)
    store.close()


def test_store_sql_four_concurrent_sqlite_writers_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_sqlite_writer, args=(url, w, 25, 20)) for w in range(4)]
    for p in workers:
        p.start()
    with SqlStore(url, dim=8) as reader:  # searches run while the writers commit (WAL: readers never block them)
        seen = []
        while any(p.is_alive() for p in workers) and len(seen) < 500:
            ids, _ = reader.search(torch.randn(2, 8), 3)
            seen.append(reader.count())
        assert seen == sorted(seen), "a reader must see whole batches being added, never rows disappearing"
        assert all(n % 20 == 0 for n in seen), f"a reader saw a partial batch: {seen}"
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with SqlStore(url) as store:
        assert store.count() == 4 * 25 * 20
        assert store.ids().tolist() == sorted(w * 1_000_000 + i for w in range(4) for i in range(25 * 20))
        _, meta = store.get([3_000_019])
        assert meta == [{"worker": 3, "batch": 0}]


def test_store_sql_new_store_needs_dim_and_reopen_checks_it(tmp_path):
    with pytest.raises(StoreError, match="dim="):
        SqlStore(f"sqlite:///{tmp_path}/new.db")
    with pytest.raises(StoreError, match="does not exist"):
        SqlStore(f"sqlite:///{tmp_path}/missing/dir/new.db", dim=3)
    conn = sqlite3.connect(tmp_path / "foreign.db")
    conn.execute("CREATE TABLE embeddings (x TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not an OML store"):
        SqlStore(f"sqlite:///{tmp_path}/foreign.db", dim=3)


def test_store_sql_info_round_trips(tmp_path):
    with SqlStore(f"sqlite:///{tmp_path}/s.db", dim=2) as store:
        store.update_info({"model": "resnet", "checkpoint": "/x.pth"})
        store.update_info({"transform": "norm"})
    with SqlStore(f"sqlite:///{tmp_path}/s.db") as store:
        assert store.info == {"model": "resnet", "checkpoint": "/x.pth", "transform": "norm"}


def test_store_sql_open_store_by_url_and_path(tmp_path, oml_host):
    assert resolve_store_url(oml_host, tmp_path / "a.db") == ("sql", {"url": f"sqlite:///{tmp_path}/a.db"})
    assert resolve_store_url(oml_host, "postgres://u@h/db") == ("sql", {"url": "postgresql://u@h/db"})
    with open_store(oml_host, tmp_path / "a.db", dim=3, metric="cosine") as store:
        assert isinstance(store, SqlStore) and store.metric == "cosine"
    with open_store(oml_host, f"sqlite:///{tmp_path}/a.db", table="embeddings") as store:
        assert store.dim == 3
    with pytest.raises(StoreError, match="no installed store opens URLs of the scheme 'mongodb'"):
        open_store(oml_host, "mongodb://x/y", dim=3)
    with pytest.raises(StoreError, match="cannot tell"):
        open_store(oml_host, tmp_path / "nothing_here", dim=3)


def test_store_sql_open_store_without_the_plugin_says_what_to_install(tmp_path):
    host = Host(entry_points=False, env={})
    with pytest.raises(StoreError, match="pip install oml-store-sql") as info:
        open_store(host, tmp_path / "a.db", dim=3)
    assert "faiss:///" in str(info.value), "the error lists the known store URL forms"
