"""kill -9 during ``oml index``: the store opens, holds exactly whole committed batches, and a re-run completes it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oml_core import Host
from oml_core.builtin.stores import items_from_folder
from oml_core.stores import open_store

N_IMAGES, BATCH = 60, 2
OML = [sys.executable, "-m", "oml_core.cli"]


def _gallery(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(folder / f"img_{i:03d}.png")
    return folder


def _sqlite_count(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the table does not exist yet
        return 0


def _faiss_count(path: Path) -> int:
    pointer = path / "CURRENT"
    if not pointer.exists():
        return 0
    try:
        return int(json.loads((path / pointer.read_text().strip() / "store.json").read_text())["count"])
    except (OSError, ValueError):
        return 0


def _index_command(store: str, gallery: Path, *extra: str) -> list[str]:
    return [*OML, "index", "--store", store, "--extractor", "simple_cnn", "--im-size", "32", "--batch-size", str(BATCH),
            "--no-progress", *extra, str(gallery)]


# only the store plugins (simple_cnn is built in): the other plugins' imports would only slow each run down; one
# thread, because on a busy 2-core machine an OpenMP team turns each tiny conv into tens of milliseconds
ENV = {**os.environ, "OML_LOAD_PLUGINS": "oml_store_sql,oml_store_faiss", "OMP_NUM_THREADS": "1"}


def _kill_when(command: list[str], count: Callable[[], int], at_least: int) -> None:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    deadline = time.monotonic() + 120
    try:
        while count() < at_least:
            assert process.poll() is None, f"oml index ended before it could be killed: {process.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "oml index made no progress"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "faiss"])
def test_cli_index_kill9_keeps_whole_batches_and_rerun_completes(tmp_path, kind):
    gallery = _gallery(tmp_path / "gallery")
    order = [item.id for item in items_from_folder(gallery)]  # the order oml index embeds them in
    if kind == "sqlite":
        target = tmp_path / "g.db"
        store_url, count, extra, unit = str(target), lambda: _sqlite_count(target), (), BATCH
    else:
        target = tmp_path / "g.faiss"
        store_url, count, extra, unit = f"faiss://{target}", lambda: _faiss_count(target), ("--save-every", "6"), 6
    _kill_when(_index_command(store_url, gallery, *extra), count, at_least=8)

    with open_store(Host(env={}), store_url) as store:
        n = store.count()
        assert 8 <= n < N_IMAGES, f"killed with {n} stored"
        assert n % unit == 0, f"{n} items is not a whole number of committed batches/saves of {unit}"
        stored = set(store.ids().tolist())
        assert stored == set(order[:n]), "the store must hold exactly the first committed batches"

    rerun = subprocess.run(_index_command(store_url, gallery, *extra), capture_output=True, text=True, timeout=300, env=ENV)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"{n} already in" in rerun.stdout
    with open_store(Host(env={}), store_url) as store:
        assert store.count() == N_IMAGES
        assert sorted(store.ids().tolist()) == sorted(order)
