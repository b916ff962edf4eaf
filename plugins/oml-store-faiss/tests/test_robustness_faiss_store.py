"""FAISS store robustness: damaged snapshot files give one clear StoreError (or a rebuild), a full disk loses nothing
already saved, and one writer at a time across processes (2 and 4 concurrent writers: every item stored once)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from oml_store_faiss import FaissStore

from oml_core.cli import main
from oml_core.stores import StoreError

ENV = {**os.environ, "OML_LOAD_PLUGINS": "oml_store_faiss", "OMP_NUM_THREADS": "1"}


def _vectors(ids, dim=8):
    return np.stack([np.random.default_rng(int(i)).standard_normal(dim).astype(np.float32) for i in ids])


def _store(path: Path, n: int = 20) -> Path:
    with FaissStore(path, dim=8) as store:
        store.add(list(range(n)), _vectors(range(n)), metadata=[{"path": f"{i}.png"} for i in range(n)])
    return path


def _snapshot(path: Path) -> Path:
    return path / (path / "CURRENT").read_text().strip()


def _no_traceback_search(path: Path, capsys) -> str:
    image = path.parent / "q.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert main(["search", "--store", f"faiss://{path}", str(image), "--extractor", "simple_cnn", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_robustness_truncated_index_faiss_is_rebuilt_from_the_vectors(tmp_path):
    path = _store(tmp_path / "s")
    index = _snapshot(path) / "index.faiss"
    index.write_bytes(index.read_bytes()[:40])
    with pytest.warns(UserWarning, match="index.faiss is damaged.*rebuilding the index from the 20 stored vectors"):
        store = FaissStore(path)
    ids, distances = store.search(_vectors([7]), k=1)
    assert ids.tolist() == [[7]] and distances[0, 0] < 1e-5
    store.close()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("object_ids", "ids.npy is not a readable numeric .npy"),
        ("float_ids", "ids.npy holds float64"),
        ("truncated_vectors", "vectors.npy is not a readable numeric .npy"),
        ("store_json", "store.json cannot be read"),
        ("metadata", "metadata.jsonl is not JSON lines"),
        ("current", "CURRENT names"),
    ],
)
def test_robustness_damaged_faiss_snapshot_is_one_clear_error(tmp_path, capsys, damage, message):
    path = _store(tmp_path / "s")
    snapshot = _snapshot(path)
    if damage == "object_ids":
        np.save(snapshot / "ids.npy", np.array([{"x": 1}] * 20, dtype=object), allow_pickle=True)
    elif damage == "float_ids":
        np.save(snapshot / "ids.npy", np.arange(20, dtype=np.float64))
    elif damage == "truncated_vectors":
        data = (snapshot / "vectors.npy").read_bytes()
        (snapshot / "vectors.npy").write_bytes(data[: len(data) // 2])
    elif damage == "store_json":
        (snapshot / "store.json").write_text('{"dim": 8, ')
    elif damage == "metadata":
        (snapshot / "metadata.jsonl").write_bytes(b"\xff\xfe not json\n")
    else:
        (path / "CURRENT").write_text("../../etc\n")
    with pytest.raises(StoreError, match=message):
        FaissStore(path)
    err = _no_traceback_search(path, capsys)
    assert str(path) in err


def _fill_until_full_script(path: Path, fsize_limit: int | None) -> str:
    return textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        from oml_core.stores import StoreError
        from oml_store_faiss import FaissStore
        store = FaissStore({str(path)!r}, dim=64)
        store.add(np.arange(100), np.ones((100, 64), dtype=np.float32))
        store.save()
        if {fsize_limit!r} is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a signal, as on a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_limit!r}, {fsize_limit!r}))
        store.add(np.arange(100, 20100), np.ones((20000, 64), dtype=np.float32))
        try:
            store.save()
        except StoreError as exc:
            print("STORE_ERROR", exc)
            sys.exit(3)
        print("SAVED")
    """)


@contextlib.contextmanager
def _small_disk(tmp_path: Path):
    """A 1 MiB tmpfs when this process may mount one (root), else None (then RLIMIT_FSIZE plays the full disk)."""
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    ).returncode == 0
    try:
        yield mount if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)


def test_robustness_full_disk_while_saving_keeps_the_last_snapshot(tmp_path):
    with _small_disk(tmp_path) as disk:
        path = (disk or tmp_path) / "s"
        limit = None if disk is not None else 600_000
        done = subprocess.run([sys.executable, "-c", _fill_until_full_script(path, limit)], capture_output=True, text=True,
                              env=ENV, timeout=300)
        assert done.returncode == 3, done.stdout + done.stderr[-3000:]
        assert "no space left on device" in done.stdout and "snapshot-000002) is intact" in done.stdout
        assert "Traceback" not in done.stderr
        with FaissStore(path) as store:
            assert store.count() == 100  # nothing already saved is lost
        assert not [p.name for p in path.iterdir() if p.name.startswith((".tmp-", ".CURRENT-"))]


# --------------------------------------------------------------------------------------------- one writer at a time
def test_robustness_second_writer_waits_then_sees_the_first_writers_items(tmp_path, capsys):
    path = _store(tmp_path / "s", n=5)
    first = FaissStore(path)
    first.add([100], _vectors([100]))  # takes the writer lock
    reader = FaissStore(path)  # readers never wait
    assert reader.count() == 5
    reader.close()
    with pytest.raises(StoreError, match=rf"being written by another process \(pid {os.getpid()}\).*one writer at a time"):
        FaissStore(path, lock_timeout_s=1).add([200], _vectors([200]))
    assert "waiting for it" in capsys.readouterr().err

    second = FaissStore(path, lock_timeout_s=30)
    worker = threading.Thread(target=lambda: second.add([200], _vectors([200])))
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the second writer must wait for the first"
    first.close()
    worker.join(30)
    second.close()
    with FaissStore(path) as store:
        assert sorted(store.ids().tolist()) == [0, 1, 2, 3, 4, 100, 200]  # the load-modify-save kept both


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from oml_store_faiss import FaissStore
    path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ids = np.arange(first, first + count)
    vectors = np.stack([np.random.default_rng(int(i)).standard_normal(8).astype(np.float32) for i in ids])
    store = FaissStore(path, dim=8)
    for start in range(0, count, 6):
        store.add(ids[start:start + 6], vectors[start:start + 6], metadata=[{"writer": first}] * len(ids[start:start + 6]))
        if start % 12 == 0:
            store.save()
    store.close()
""")


@pytest.mark.parametrize("writers", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_robustness_concurrent_writers_store_every_item_exactly_once(tmp_path, writers):
    path = tmp_path / "shared"
    per_writer = 36
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(1000 * w), str(per_writer)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(writers)
    ]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
    expected = [1000 * w + i for w in range(writers) for i in range(per_writer)]
    with FaissStore(path) as store:
        ids = store.ids().tolist()
        assert len(ids) == len(expected) and sorted(ids) == sorted(expected)  # each exactly once
        vectors, metadata = store.get(expected)
        assert torch.allclose(vectors, torch.from_numpy(_vectors(expected)))
        assert [m["writer"] for m in metadata] == [1000 * (i // 1000) for i in expected]
    assert json.loads((_snapshot(path) / "store.json").read_text())["count"] == len(expected)
