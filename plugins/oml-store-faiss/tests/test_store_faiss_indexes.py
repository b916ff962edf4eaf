"""The faiss store: every index kind through the store contract, training, deletes, ids, atomic saves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from oml_store_faiss import FaissStore

from oml_core.stores import StoreError, open_store, resolve_store_url
from oml_core.testing.contracts.stores import reference_topk, run_store_contract

# small lists / sub-quantizers so that the contract's few hundred vectors train the IVF indexes;
# pq_m=2 divides every dimension the contract uses
INDEX_OPTIONS = {
    "flat": {},
    "ivf_flat": {"nlist": 8, "nprobe": 4},
    "ivf_pq": {"nlist": 4, "nprobe": 4, "pq_m": 2, "pq_nbits": 5, "train_size": 200, "rerank": 8},
    "hnsw": {"hnsw_m": 16, "ef_construction": 40, "ef_search": 32},
}


@pytest.mark.parametrize("index", sorted(INDEX_OPTIONS))
def test_store_faiss_contract_for_every_index(tmp_path, index):
    def open_store(name, dim=None, metric=None):
        return FaissStore(tmp_path / name, dim=dim, metric=metric, index=index, **INDEX_OPTIONS[index])

    run_store_contract(open_store)
    if index != "flat":  # the contract's 600-vector search check really ran on a trained index
        assert FaissStore(tmp_path / "search_euclidean").is_trained


def test_store_faiss_ivf_is_exact_until_trained_then_approximate_and_reloads(tmp_path):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 16, generator=gen)
    queries = torch.randn(10, 16, generator=gen)
    store = FaissStore(tmp_path / "ivf", dim=16, index="ivf_flat", nlist=32, nprobe=32)
    store.add(np.arange(300), x[:300])
    assert not store.is_trained  # 300 < 39 * 32
    ids, _ = store.search(queries, 5)
    order, _ = reference_topk(queries, x[:300], "euclidean")
    assert ids.tolist() == order[:, :5].tolist()
    store.add(np.arange(300, 2000), x[300:])
    assert store.is_trained
    ids, _ = store.search(queries, 5)
    order, _ = reference_topk(queries, x, "euclidean")
    assert ids.tolist() == order[:, :5].tolist()  # nprobe == nlist: IVF searches every list
    store.close()
    again = FaissStore(tmp_path / "ivf", nprobe=1)  # search options may change per open
    assert again.is_trained and again.count() == 2000
    with pytest.raises(StoreError, match="nlist=32"):
        FaissStore(tmp_path / "ivf", nlist=64)


def test_store_faiss_hnsw_delete_rebuilds_graph(tmp_path):
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(1))
    with FaissStore(tmp_path / "h", dim=8, index="hnsw") as store:
        store.add(np.arange(500) + 2**62, x)
        assert store.delete([2**62 + 7, 5]) == 1
        ids, _ = store.search(x[7:8], 3)
        assert 2**62 + 7 not in ids.tolist()[0] and store.count() == 499
    with FaissStore(tmp_path / "h") as store:
        ids, _ = store.search(x[8:9], 1)
        assert ids.tolist() == [[2**62 + 8]]


def test_store_faiss_layout_is_snapshot_plus_pointer(tmp_path):
    with FaissStore(tmp_path / "s", dim=4) as store:
        store.add([1], torch.ones(1, 4), metadata=[{"path": "a.jpg"}])
        store.save()
        store.add([2], torch.zeros(1, 4))
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    current = (tmp_path / "s" / "CURRENT").read_text().strip()
    assert [n for n in names if n.startswith("snapshot-")] == [current], "older snapshots are removed after a save"
    settings = json.loads((tmp_path / "s" / current / "store.json").read_text())
    assert settings["count"] == 2 and settings["dim"] == 4


def test_store_faiss_failed_save_keeps_the_last_complete_one(tmp_path, monkeypatch):
    store = FaissStore(tmp_path / "s", dim=4)
    store.add([1, 2], torch.randn(2, 4))
    store.save()
    store.add([3], torch.randn(1, 4))

    def broken(folder):
        (folder / "ids.npy").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(store, "_write_snapshot", broken)
    with pytest.raises(StoreError, match="disk full.*snapshot-000002.* is intact"):
        store.save()
    assert FaissStore(tmp_path / "s").count() == 2
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".tmp-")]


def test_store_faiss_kill_during_saves_keeps_a_complete_snapshot(tmp_path):
    """kill -9 a process that saves in a loop: the folder always opens, holding exactly some number of whole batches."""
    path = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from oml_store_faiss import FaissStore
        store = FaissStore({str(path)!r}, dim=32, index="flat")
        rng = np.random.default_rng(0)
        for b in range(10_000):
            store.add(np.arange(b * 500, (b + 1) * 500), rng.standard_normal((500, 32)).astype(np.float32))
            store.save()
            print(b, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(4):  # let a few saves complete, then kill in the middle of the next ones
        proc.stdout.readline()
    time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = FaissStore(path)
    n = store.count()
    assert n >= 4 * 500 and n % 500 == 0
    assert store.ids().tolist() == list(range(n))
    store.add([n], torch.randn(1, 32))  # and it can go on
    store.close()
    assert FaissStore(path).count() == n + 1


def test_store_faiss_options_are_checked(tmp_path):
    with pytest.raises(StoreError, match="divisible"):
        FaissStore(tmp_path / "a", dim=10, index="ivf_pq", pq_m=4)
    with pytest.raises(StoreError, match="unknown FAISS index"):
        FaissStore(tmp_path / "b", dim=10, index="lsh")
    with pytest.raises(StoreError, match="dim="):
        FaissStore(tmp_path / "c")
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        FaissStore(tmp_path / "f", dim=4)


def test_store_faiss_open_store_by_url(tmp_path, oml_host):
    assert resolve_store_url(oml_host, f"faiss://{tmp_path}/g") == ("faiss", {"path": f"{tmp_path}/g"})
    with open_store(oml_host, f"faiss://{tmp_path}/g", dim=6, metric="dot", index="hnsw") as store:
        assert isinstance(store, FaissStore) and store.index_kind == "hnsw"
        store.add([1], torch.ones(1, 6))
    with open_store(oml_host, tmp_path / "g") as store:  # an existing folder is a FAISS store
        assert store.metric == "dot" and store.count() == 1
