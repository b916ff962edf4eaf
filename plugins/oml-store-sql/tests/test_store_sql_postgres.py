"""The sql store on a real PostgreSQL + pgvector (started by the session fixture in conftest.py)."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from oml_store_sql import SqlStore

from oml_core.stores import StoreError
from oml_core.testing.contracts.stores import reference_topk, run_store_contract

pytestmark = pytest.mark.postgres


def _opener(url, pg_table, **options):
    tables: dict[str, str] = {}

    def open_store(name, dim=None, metric=None):
        table = tables.setdefault(name, pg_table(name))
        return SqlStore(url, table=table, dim=dim, metric=metric, **options)

    return open_store


@pytest.mark.parametrize("index", ["hnsw", "none"])
def test_store_sql_postgres_contract(postgres_url, pg_table, index):
    run_store_contract(_opener(postgres_url, pg_table, index=index))


def test_store_sql_postgres_uses_hnsw_index_and_pgvector_operators(postgres_url, pg_table):
    table = pg_table("plan")
    with SqlStore(postgres_url, table=table, dim=8, metric="cosine") as store:
        store.add(np.arange(2000), torch.randn(2000, 8))
        engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            indexes = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table}).scalars().all()
            conn.execute(sa.text("SET enable_seqscan = off"))
            query = f"EXPLAIN SELECT id FROM \"{table}\" ORDER BY embedding <=> '[1,0,0,0,0,0,0,0]' LIMIT 5"  # noqa: S608
            plan = "\n".join(conn.execute(sa.text(query)).scalars())
        engine.dispose()
        assert any("hnsw" in d and "vector_cosine_ops" in d for d in indexes), indexes
        assert f"{table}_hnsw" in plan, plan
        # recall of the HNSW search itself, against float64 brute force
        gallery, _ = store.get(np.arange(2000))
        queries = torch.randn(20, 8)
        ids, _ = store.search(queries, 10)
        order, _ = reference_topk(queries, gallery, "cosine")
        recall = np.mean([len(set(ids[i].tolist()) & set(order[i, :10].tolist())) / 10 for i in range(20)])
        assert recall >= 0.9


def test_store_sql_postgres_sql_injection_in_metadata_and_filter(postgres_url, pg_table):
    table = pg_table("inject")
    evil = "'); DROP TABLE x; --"
    with SqlStore(postgres_url, table=table, dim=4, metric="euclidean") as store:
        store.add([1, 2], torch.eye(4)[:2], metadata=[{"name": evil, evil: evil}, {"name": "ok"}])
        ids, _ = store.search(torch.eye(4)[:1], 2, filter={evil: evil})
        assert ids.tolist() == [[1, -1]]
        assert store.get([1])[1] == [{"name": evil, evil: evil}]
        assert store.count() == 2


def test_store_sql_postgres_rejects_table_names_that_are_not_identifiers(postgres_url):
    with pytest.raises(StoreError, match="identifier"):
        SqlStore(postgres_url, table='x"; DROP TABLE y; --', dim=4)


def _pg_writer(url: str, table: str, worker: int, batches: int, batch: int) -> None:
    store = SqlStore(url, table=table, dim=8, metric="euclidean")
    rng = np.random.default_rng(worker)
    for b in range(batches):
        start = worker * 1_000_000 + b * batch
        store.add(np.arange(start, start + batch), rng.standard_normal((batch, 8)).astype(np.float32),
                  metadata=[{"worker": worker, "batch": b}] * batch)
    store.close()


def test_store_sql_postgres_four_concurrent_writers_lose_nothing(postgres_url, pg_table):
    table = pg_table("concurrent")
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_pg_writer, args=(postgres_url, table, w, 15, 20)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with SqlStore(postgres_url, table=table) as store:
        assert store.count() == 4 * 15 * 20
        expected = sorted(w * 1_000_000 + i for w in range(4) for i in range(15 * 20))
        assert store.ids().tolist() == expected
