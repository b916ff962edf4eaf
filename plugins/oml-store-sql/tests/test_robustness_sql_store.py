"""SQL store robustness: a non-database, truncated or damaged SQLite file and an unreachable PostgreSQL give one
clear StoreError (no traceback through the CLI); concurrent writers (2 and 4, SQLite and PostgreSQL) store every item
exactly once; kill -9 during `oml index` into PostgreSQL keeps whole batches and a re-run completes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from oml_store_sql import SqlStore
from PIL import Image

from oml_core import Host
from oml_core.cli import main
from oml_core.stores import StoreError, open_store

ENV = {**os.environ, "OML_LOAD_PLUGINS": "oml_store_sql", "OMP_NUM_THREADS": "1"}


def _vectors(ids, dim=8):
    return np.stack([np.random.default_rng(int(i)).standard_normal(dim).astype(np.float32) for i in ids])


def _query_image(tmp_path: Path) -> str:
    path = tmp_path / "q.png"
    Image.new("RGB", (8, 8)).save(path)
    return str(path)


def _sqlite_store(path: Path, n: int = 300) -> Path:
    with SqlStore(f"sqlite:///{path}", dim=8) as store:
        store.add(list(range(n)), _vectors(range(n)), metadata=[{"path": f"{i}.png"} for i in range(n)])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file, so that damaging it counts
    conn.close()
    return path


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "not_a_database":
        path.write_text("id,path\n1,a.png\n")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif how == "header":
        path.write_bytes(b"\x00" * 100 + data[100:])
    else:  # garbage over the pages after the first one
        path.write_bytes(data[:4096] + bytes(np.random.default_rng(0).integers(0, 255, len(data) - 4096, dtype=np.uint8)))


@pytest.mark.parametrize("how", ["not_a_database", "truncated", "header", "pages"])
def test_robustness_damaged_sqlite_file_is_one_clear_error(tmp_path, capsys, how):
    path = _sqlite_store(tmp_path / "g.db")
    _damage(path, how)
    with pytest.raises(StoreError, match="cannot be used as an SQLite store|damaged"):
        with SqlStore(f"sqlite:///{path}") as store:
            store.search(torch.from_numpy(_vectors([1])), k=3)
    query = _query_image(tmp_path)
    for command in (
        ["search", "--store", str(path), query, "--extractor", "simple_cnn", "--no-progress"],
        ["index", "--store", str(path), "--extractor", "simple_cnn", "--no-progress", str(tmp_path)],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and str(path) in err and "SQLite" in err, err


def test_robustness_postgres_connection_refused_is_one_clear_error(tmp_path, capsys):
    url = "postgresql://oml@127.0.0.1:9/oml"  # port 9 (discard): nothing listens there
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL server.*127.0.0.1:9"):
        SqlStore(url, dim=3)
    assert main(["search", "--store", url, _query_image(tmp_path), "--extractor", "simple_cnn", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot reach the PostgreSQL server" in err and err.count("\n") == 1


# --------------------------------------------------------------------------------------------- concurrent writers
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from oml_store_sql import SqlStore
    url, table, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ids = np.arange(first, first + count)
    vectors = np.stack([np.random.default_rng(int(i)).standard_normal(8).astype(np.float32) for i in ids])
    with SqlStore(url, dim=8, table=table, index="none") as store:
        for start in range(0, count, 6):
            store.add(ids[start:start + 6], vectors[start:start + 6], metadata=[{"writer": first}] * len(ids[start:start + 6]))
""")


def _concurrent_writers(url: str, table: str, writers: int, per_writer: int = 36) -> list[int]:
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, table, str(1000 * w), str(per_writer)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    return [1000 * w + i for w in range(writers) for i in range(per_writer)]


def _check_exactly_once(url: str, table: str, expected: list[int]) -> None:
    with SqlStore(url, table=table) as store:
        ids = store.ids().tolist()
        assert len(ids) == len(expected) and sorted(ids) == sorted(expected)
        vectors, metadata = store.get(expected)
        assert torch.allclose(vectors, torch.from_numpy(_vectors(expected)))
        assert [m["writer"] for m in metadata] == [1000 * (i // 1000) for i in expected]


@pytest.mark.parametrize("writers", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_robustness_concurrent_sqlite_writers_store_every_item_exactly_once(tmp_path, writers):
    url = f"sqlite:///{tmp_path}/shared.db"
    _check_exactly_once(url, "embeddings", _concurrent_writers(url, "embeddings", writers))


@pytest.mark.parametrize("writers", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_robustness_concurrent_postgres_writers_store_every_item_exactly_once(postgres_url, pg_table, writers):
    table = pg_table("conc")
    _check_exactly_once(postgres_url, table, _concurrent_writers(postgres_url, table, writers))


# --------------------------------------------------------------------------------------------- kill -9
def _postgres_count(url: str, table: str) -> int:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())  # noqa: S608 - test table
    except sa.exc.ProgrammingError:  # the table does not exist yet
        return 0
    finally:
        engine.dispose()


@pytest.mark.slow
def test_robustness_kill9_during_postgres_indexing_keeps_whole_batches(tmp_path, postgres_url, pg_table):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    rng = np.random.default_rng(0)
    for i in range(60):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(gallery / f"img_{i:03d}.png")
    table = pg_table("kill")
    command = [sys.executable, "-m", "oml_core.cli", "index", "--store", postgres_url, "--store-option", f"table={table}",
               "--extractor", "simple_cnn", "--im-size", "32", "--batch-size", "2", "--no-progress", str(gallery)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 120
    try:
        while _postgres_count(postgres_url, table) < 8:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    host = Host(env={})
    with open_store(host, postgres_url, table=table) as store:
        n = store.count()
        assert 8 <= n < 60 and n % 2 == 0, f"{n} is not a whole number of batches"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, env=ENV)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{n} already in" in rerun.stdout
    with open_store(host, postgres_url, table=table) as store:
        assert store.count() == 60 and len(set(store.ids().tolist())) == 60


# --------------------------------------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_distributed_index_into_postgres_equals_a_single_process(tmp_path, postgres_url, pg_table):
    """`torchrun --nproc-per-node 2 oml index` (gloo, CPU): both ranks write into one PostgreSQL table, which ends
    equal to the one a single process fills."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    rows = []
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        rows.append(f"{i},images/{i}.png,{i % 4}")
    (tmp_path / "df.csv").write_text("id,path,label\n" + "\n".join(rows) + "\n")
    tables = {"single": pg_table("single"), "double": pg_table("double")}
    for name, launcher in (("single", []), ("double", ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"])):
        command = [sys.executable, *launcher, "-m", "oml_core.cli", "index", "--store", postgres_url, "--store-option",
                   f"table={tables[name]}", "--extractor", "simple_cnn", "--im-size", "32", "--batch-size", "4",
                   "--no-progress", str(tmp_path / "df.csv")]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    host = Host(env={})
    content = []
    for name in ("single", "double"):
        with open_store(host, postgres_url, table=tables[name], create=False) as store:
            ids = sorted(store.ids().tolist())
            vectors, metadata = store.get(ids)
            content.append((ids, vectors, metadata, store.info["model"]["fingerprint"]))
    (ids1, v1, m1, f1), (ids2, v2, m2, f2) = content
    assert ids1 == ids2 == list(range(20)) and torch.allclose(v1, v2, atol=1e-5) and m1 == m2 and f1 == f2
