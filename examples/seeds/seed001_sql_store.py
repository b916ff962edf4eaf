"""Seed 001, part 03 done with OML's parts instead of hand-written SQL: the SQL store plugin (``oml-store-sql``,
opened with ``open_store``) keeps the vectors, searches the top-k nearest by L2 distance, and
``RetrievalResults.visualize`` draws the query next to its matches.

The seed's three blocks map as follows:

* "DB 생성" (``CREATE TABLE embeddings (id, embedding BLOB)`` + ``INSERT``) -> ``open_store(host, "embedding_database.db",
  dim=100, metric="euclidean", table="oml_embeddings")`` + ``store.add(ids, vectors)``. The seed inserts one vector;
  this inserts 20 so that the top-5 has five entries. The store keeps its own table (and a table of its settings), so
  it can share the database file with the seed's ``embeddings`` table.
* "DB 출력" (``PRAGMA table_info`` + ``SELECT *``, printed as ``INSERT`` statements) -> ``store.ids()`` +
  ``store.get(ids)``, printed the same way (the vector shortened).
* "시각화" (``np.frombuffer`` + a Python loop of ``np.linalg.norm`` + sort + ``plt.subplots``) ->
  ``RetrievalResults.from_store(store, query, k=5)`` (the store's exact search) + ``rr.visualize(...)``.

Run it from any directory: it writes ``embedding_database.db`` there (an existing store in it is reused).
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

from oml_core import Host
from oml_core.retrieval import RetrievalResults
from oml_core.stores import open_store

DATABASE = "embedding_database.db"
TABLE = "oml_embeddings"
N_VECTORS = 20
K = 5


def create_database(host: Host, rng: np.random.Generator) -> None:
    """DB 생성: one 100-d random vector per id (ids 1..N, as SQLite's INTEGER PRIMARY KEY would number them)."""
    with open_store(host, DATABASE, dim=100, metric="euclidean", table=TABLE) as store:
        new_ids = [i for i in range(1, N_VECTORS + 1) if i not in set(store.ids().tolist())]
        if new_ids:
            store.add(new_ids, torch.from_numpy(rng.random((len(new_ids), 100))).float())


def print_database(host: Host) -> None:
    """DB 출력: every stored row, in the seed's SQL form."""
    with open_store(host, DATABASE, table=TABLE) as store:
        ids = store.ids()
        vectors, _ = store.get(ids)
    print("SQL 형식으로 데이터 출력:")
    for item_id, vector in zip(ids.tolist(), vectors.tolist()):
        shown = ", ".join(f"{v:.4f}" for v in vector[:4])
        print(f"INSERT INTO {TABLE} (id, embedding) VALUES ({item_id}, [{shown}, ... {len(vector)} values]);")  # noqa: S608 - printed


def search_and_visualize(host: Host, query_vector: np.ndarray, k: int = K) -> tuple[RetrievalResults, dict[int, np.ndarray]]:
    """시각화: the store's top-k for ``query_vector`` and a figure of the query (item 0) next to its matches."""
    with open_store(host, DATABASE, table=TABLE) as store:
        rr = RetrievalResults.from_store(store, torch.from_numpy(query_vector).float()[None], k=k)
        top_k_ids = rr.retrieved_ids[0].tolist()
        vectors, _ = store.get(top_k_ids)
    # the query is drawn as item 0; stored ids start at 1, so the two never collide
    images = {0: query_vector.reshape(10, 10), **{i: v.numpy().reshape(10, 10) for i, v in zip(top_k_ids, vectors)}}
    rr.visualize([0], images=images.__getitem__, n_galleries_to_show=k)
    return rr, images


if __name__ == "__main__":
    host = Host()
    rng = np.random.default_rng()
    create_database(host, rng)
    print_database(host)

    # 임의의 쿼리 벡터 생성 (여기서는 랜덤 벡터로 대체)
    query_vector = rng.random(100)
    rr, images = search_and_visualize(host, query_vector)
    matches = {i: round(float(d), 4) for i, d in zip(rr.retrieved_ids[0].tolist(), rr.distances[0])}
    print(f"Top {K} matches (ID: distance):", matches)
    plt.show()
