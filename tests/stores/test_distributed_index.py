"""``torchrun --nproc-per-node 2 oml index`` on the CPU (gloo): the store equals the one a single process builds
(SQLite written by both ranks, FAISS through per-rank shards merged at the end), and a run killed half-way resumes;
two plain `oml index` processes writing disjoint ids into one FAISS store lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oml_core import Host
from oml_core.stores import open_store

ENV = {**os.environ, "OML_LOAD_PLUGINS": "oml_store_sql,oml_store_faiss", "OMP_NUM_THREADS": "1"}
MODEL = ["--extractor", "simple_cnn", "--im-size", "32", "--batch-size", "4", "--no-progress"]


def _dataframe(root: Path, n: int, first_id: int = 0, name: str = "df.csv") -> Path:
    rng = np.random.default_rng(first_id)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = root / "images" / f"img_{first_id + i:04d}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)
        rows.append(f"{first_id + i},images/{path.name},{i % 5}")
    (root / name).write_text("id,path,label\n" + "\n".join(rows) + "\n")
    return root / name


def _index(store: str, df: Path, nproc: int = 1, *extra: str) -> subprocess.CompletedProcess[str]:
    oml = [sys.executable, "-m", "oml_core.cli"]
    if nproc > 1:
        oml = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "oml_core.cli"]
    done = subprocess.run([*oml, "index", "--store", store, *MODEL, *extra, str(df)], capture_output=True, text=True,
                          env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _content(url: str) -> tuple[list[int], torch.Tensor, list[dict], dict]:
    with open_store(Host(env={}), url, create=False) as store:
        ids = sorted(store.ids().tolist())
        vectors, metadata = store.get(ids)
        return ids, vectors, metadata, store.info["model"]["fingerprint"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "faiss"])
def test_distributed_index_equals_a_single_process(tmp_path, kind):
    df = _dataframe(tmp_path / "data", 30)
    single = str(tmp_path / "single.db") if kind == "sqlite" else f"faiss://{tmp_path}/single"
    double = str(tmp_path / "double.db") if kind == "sqlite" else f"faiss://{tmp_path}/double"
    _index(single, df)
    done = _index(double, df, nproc=2)
    assert "rank 0/2 embedded 15" in done.stdout and "rank 1/2 embedded 15" in done.stdout
    assert "the store holds 30 items" in done.stdout
    ids, vectors, metadata, fingerprint = _content(single)
    ids2, vectors2, metadata2, fingerprint2 = _content(double)
    assert ids == ids2 == list(range(30))
    assert torch.allclose(vectors, vectors2, atol=1e-5)
    assert metadata == metadata2 and fingerprint == fingerprint2
    if kind == "faiss":
        assert not (tmp_path / "double" / "shards").exists(), "merged shards are deleted"


@pytest.mark.slow
def test_distributed_index_resumes_and_merges_shards_left_by_a_killed_run(tmp_path):
    """A killed 2-rank FAISS run left a shard (rank 1's) unmerged; the next run, with 3 ranks, skips what is in the
    store or in a shard, and merges every shard."""
    df = _dataframe(tmp_path / "data", 24)
    url = f"faiss://{tmp_path}/g"
    part = _dataframe(tmp_path / "data", 0, name="empty.csv")  # an empty frame makes the store with the model
    part.write_text("id,path,label\n" + "\n".join((tmp_path / "data" / "df.csv").read_text().splitlines()[1:9]) + "\n")
    _index(url, part)  # 8 items in the store, as if merged before the kill
    shard = f"faiss://{tmp_path}/g/shards/rank-0001"
    left = tmp_path / "data" / "left.csv"
    left.write_text("id,path,label\n" + "\n".join((tmp_path / "data" / "df.csv").read_text().splitlines()[9:15]) + "\n")
    _index(shard, left)  # 6 items in an unmerged shard
    done = _index(url, df, nproc=3)
    assert "merged" in done.stdout and "the store holds 24 items" in done.stdout
    embedded = sum(int(line.split(" embedded ")[1].split()[0]) for line in done.stdout.splitlines() if " embedded " in line)
    todo = list(range(8, 24))  # not in the store; rank 1 of 3 finds its items 9 and 12 in its shard already
    reused = set(todo[1::3]) & set(range(8, 14))
    assert embedded == len(todo) - len(reused), "items in the store or in the rank's own shard are not embedded again"
    ids, vectors, _, _ = _content(url)
    single = str(tmp_path / "single.db")
    _index(single, df)
    ids1, vectors1, _, _ = _content(single)
    assert ids == ids1 and torch.allclose(vectors, vectors1, atol=1e-5)


@pytest.mark.slow
def test_two_oml_index_processes_into_one_faiss_store_lose_nothing(tmp_path):
    """The report's data loss: two `oml index` with disjoint ids into one FAISS store kept 288 of 576 items."""
    a = _dataframe(tmp_path / "data", 40, first_id=0, name="a.csv")
    b = _dataframe(tmp_path / "data", 40, first_id=1000, name="b.csv")
    url = f"faiss://{tmp_path}/shared"
    oml = [sys.executable, "-m", "oml_core.cli", "index", "--store", url, *MODEL, "--save-every", "8"]
    processes = [subprocess.Popen([*oml, str(df)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
                 for df in (a, b)]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    ids, _, _, _ = _content(url)
    assert ids == list(range(40)) + list(range(1000, 1040))
