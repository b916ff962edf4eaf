"""``FaissStore``: embeddings in a FAISS index, saved to a folder.

Indexes: ``flat`` (exact), ``ivf_flat`` and ``ivf_pq`` (inverted lists; trained once enough vectors are stored, exact
search until then) and ``hnsw`` (graph). Arbitrary int64 ids through ``IndexIDMap``. The store also keeps the
float32 vectors it was given: ``get`` returns them exactly, approximate results are re-scored with them (so the
distances returned are exact ones), filtered searches are exact over the matching items, and an index can be
trained or rebuilt at any time.

On disk a store is a folder of snapshots plus a pointer::

    gallery/CURRENT                    "snapshot-000003"
    gallery/snapshot-000003/store.json settings, counts, info
                            ids.npy, vectors.npy, metadata.jsonl, index.faiss

``save()`` writes a new snapshot into a temporary folder, renames it into place and only then replaces
``CURRENT`` (an atomic rename), so a process killed at any moment, or a full disk, leaves the last complete save
readable. Changes live in memory until ``save()`` or ``close()``.

One writer at a time, across processes: the first change (``add``, ``delete``, ``update_info``, ``save``) takes
an exclusive lock on ``LOCK`` in the folder, held until ``close()`` (the system releases it if the process dies),
and reloads the store if another writer saved since it was opened, so that nothing another writer added is lost.
A second writer waits for the lock up to ``lock_timeout_s`` seconds (default 600), saying once on stderr that it
waits and for which process, then fails with a StoreError. Readers never lock: they load the last saved snapshot.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs
import faiss
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from oml_core.stores import (
    METRICS,
    StoreError,
    TopK,
    check_add_batch,
    check_filter,
    check_ids,
    check_queries,
    metadata_json,
    metadata_matches,
    pairwise_distances,
)

__all__ = ["FaissStore", "FaissStoreConfig", "IndexKind"]

IndexKind = Literal["flat", "ivf_flat", "ivf_pq", "hnsw"]
INDEX_KINDS: tuple[str, ...] = ("flat", "ivf_flat", "ivf_pq", "hnsw")
_FORMAT_VERSION = 1
_SEARCH_CHUNK = 65536  # rows per chunk of the exact (torch) search
_PARALLEL_WORK = 5e7  # about this many multiply-adds before FAISS is allowed more than one thread

# build parameters are fixed when a store is created; search parameters may change at every open
_DEFAULTS: dict[str, Any] = {
    "index": "flat",
    "nlist": 1024,
    "pq_m": 16,
    "pq_nbits": 8,
    "hnsw_m": 32,
    "ef_construction": 80,
    "train_size": None,
    "nprobe": 32,
    "ef_search": 64,
    "rerank": 4,
    "lock_timeout_s": 600,
}
_BUILD_PARAMS = ("index", "nlist", "pq_m", "pq_nbits", "hnsw_m", "ef_construction", "train_size")
_SEARCH_PARAMS = ("nprobe", "ef_search", "rerank", "lock_timeout_s")


@attrs.frozen(kw_only=True)
class FaissStoreConfig:
    """Options of the ``faiss`` store; ``None`` means "as saved in the store, else the default".

    ``path``: the store's folder. ``dim`` / ``metric`` (``euclidean``, ``cosine``, ``dot``) are needed only to create it.
    Fixed at creation: ``index`` (``flat`` default, ``ivf_flat``, ``ivf_pq``, ``hnsw``), ``nlist`` (IVF lists,
    1024), ``pq_m`` / ``pq_nbits`` (PQ sub-quantizers and bits, 16 / 8), ``hnsw_m`` / ``ef_construction`` (32 / 80),
    ``train_size`` (vectors needed before an IVF index is trained; default 39 per list, and 39 per PQ centroid).
    Per open: ``nprobe`` (IVF lists searched, 32), ``ef_search`` (HNSW candidates, 64), ``rerank`` (approximate
    indexes fetch ``k * rerank`` candidates and re-score them exactly, 4), ``lock_timeout_s`` (how long a second
    writer waits for the first, 600). ``create=False``: open an existing
    store only (a missing one is an error and nothing is created).

    Opens ``faiss:///DIR``, plain paths ending in ``.faiss`` and existing folders
    (``oml_core.stores.StoreLocator``).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("faiss",)

    path: str
    dim: int | None = None
    metric: Literal["euclidean", "cosine", "dot"] | None = None
    index: IndexKind | None = None
    nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int | None = None
    hnsw_m: int | None = None
    ef_construction: int | None = None
    train_size: int | None = None
    nprobe: int | None = None
    ef_search: int | None = None
    rerank: int | None = None
    lock_timeout_s: int | None = None
    create: bool = True

    @classmethod
    def locate(cls, url: str) -> dict[str, Any] | None:
        """The ``path`` field for ``url`` if this store opens it (see ``oml_core.stores.StoreLocator``)."""
        if url.lower().startswith("faiss://"):
            folder = url[len("faiss://") :]
            if not folder:
                raise StoreError(f"store URL {url!r} names no folder; write faiss:///path/to/dir (three slashes: absolute path)")
            return {"path": folder}
        if "://" not in url and (Path(url).suffix.lower() == ".faiss" or Path(url).is_dir()):
            return {"path": url}
        return None


class FaissStore:
    """An EmbeddingStore on FAISS, persisted to a folder.

    Example:
        >>> import torch
        >>> with FaissStore("gallery.faiss", dim=4, metric="cosine", index="hnsw") as store:  # doctest: +SKIP
        ...     store.add([7, 8], torch.eye(4)[:2], metadata=[{"path": "a.jpg"}, {"path": "b.jpg"}])
        ...     store.search(torch.eye(4)[:1], k=1)
        (tensor([[7]]), tensor([[0.]]))
    """

    def __init__(
        self, path: str | Path, *, dim: int | None = None, metric: str | None = None, create: bool = True, **params: Any
    ) -> None:
        self.path = Path(path).expanduser()
        unknown = set(params) - set(_DEFAULTS)
        if unknown:
            raise StoreError(f"unknown FAISS store options {sorted(unknown)}; known: {sorted(_DEFAULTS)}")
        if metric is not None and metric not in METRICS:
            raise StoreError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        for name, value in [("dim", dim), *params.items()]:
            if name == "index" or value is None or (name == "lock_timeout_s" and value == 0):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StoreError(f"{name} must be a positive integer, got {value!r}")
        if params.get("index") is not None and params["index"] not in INDEX_KINDS:
            raise StoreError(f"unknown FAISS index {params['index']!r}; choose one of {', '.join(INDEX_KINDS)}")
        self._closed = False
        self._dirty = False
        self._row_of: pd.Index | None = None
        self._index: Any = None  # the faiss index (IndexIDMap), or None while an IVF index waits for training data
        self._index_stale = False  # an HNSW graph cannot delete: it is rebuilt before the next search / save
        self._info: dict[str, Any] = {}
        self._lock: Any = None  # the open LOCK file while this instance is the store's writer
        self._loaded: str | None = None  # name of the snapshot loaded (to notice another writer's saves)
        self._open_params = dict(params)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"FAISS store path {str(self.path)!r} is a file; a FAISS store is a folder")
        snapshot = self._load_current(dim, metric, params)
        if snapshot is None:
            if not create:
                raise StoreError(
                    f"there is no FAISS store at {str(self.path)!r}; nothing was created. Build one first with "
                    f"`oml index --store faiss://{self.path.resolve()} ...`, or check the path"
                )
            if dim is None:
                raise StoreError(
                    f"FAISS store {str(self.path)!r} does not exist yet; pass dim= (and metric=, default 'euclidean') to make it"
                )
            self._dim, self._metric = dim, metric or "euclidean"
            self._params = {k: (params[k] if params.get(k) is not None else v) for k, v in _DEFAULTS.items()}
            self._check_build_params()
            self._ids = np.empty(0, dtype=np.int64)
            self._buffer = np.empty((0, dim), dtype=np.float32)
            self._meta: list[dict[str, Any] | None] = []
            self._index = self._new_index() if self._params["index"] in ("flat", "hnsw") else None
            self._dirty = True
            # an empty store exists on disk from the start, so that reopening it needs no dim; if another process
            # created it meanwhile, taking the writer lock loads that one instead
            self.save()

    # -------------------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def index_kind(self) -> str:
        return str(self._params["index"])

    @property
    def exact(self) -> bool:
        return self.index_kind == "flat"

    @property
    def expected_recall(self) -> float:
        """The recall@10 the contract checks expect, on clustered data (1.0 for ``flat``)."""
        return {"flat": 1.0, "hnsw": 0.9, "ivf_flat": 0.9, "ivf_pq": 0.8}[self.index_kind]

    @property
    def is_trained(self) -> bool:
        """False while an IVF index waits for ``train_size`` vectors (searches are exact until then)."""
        return self._index is not None

    def __repr__(self) -> str:
        return (
            f"FaissStore({str(self.path)!r}, dim={self._dim}, metric={self._metric!r}, index={self.index_kind!r}, "
            f"count={len(self._ids)})"
        )

    # -------------------------------------------------------------------------------------------- index building
    def _check_build_params(self) -> None:
        p = self._params
        if p["index"] == "ivf_pq" and self._dim % p["pq_m"] != 0:
            raise StoreError(f"ivf_pq needs dim divisible by pq_m, got dim={self._dim} and pq_m={p['pq_m']}")
        if p["index"] == "ivf_pq" and p["pq_nbits"] > 16:
            raise StoreError(f"pq_nbits must be at most 16, got {p['pq_nbits']}")
        if p["train_size"] is not None and p["index"].startswith("ivf"):
            needed = max(p["nlist"], 2 ** p["pq_nbits"] if p["index"] == "ivf_pq" else 0)
            if p["train_size"] < needed:
                raise StoreError(f"train_size={p['train_size']} is too small: k-means needs {needed} vectors")

    def _faiss_metric(self) -> int:
        return faiss.METRIC_L2 if self._metric == "euclidean" else faiss.METRIC_INNER_PRODUCT

    def _new_index(self) -> Any:
        p, d, metric = self._params, self._dim, self._faiss_metric()
        kind = p["index"]
        if kind == "flat":
            base: Any = faiss.IndexFlat(d, metric)
        elif kind == "hnsw":
            base = faiss.IndexHNSWFlat(d, p["hnsw_m"], metric)
            base.hnsw.efConstruction = p["ef_construction"]
        else:
            quantizer = faiss.IndexFlat(d, metric)
            if kind == "ivf_flat":
                base = faiss.IndexIVFFlat(quantizer, d, p["nlist"], metric)
            else:
                base = faiss.IndexIVFPQ(quantizer, d, p["nlist"], p["pq_m"], p["pq_nbits"], metric)
        # faiss's Python wrappers keep `quantizer` and `base` alive as long as the index that references them
        return faiss.IndexIDMap(base)

    def _train_size(self) -> int:
        p = self._params
        if p["train_size"] is not None:
            return int(p["train_size"])
        size = 39 * p["nlist"]  # FAISS warns below 39 points per centroid
        if p["index"] == "ivf_pq":
            size = max(size, 39 * 2 ** p["pq_nbits"])
        return size

    def _for_index(self, x: np.ndarray) -> np.ndarray:
        """Vectors as the index sees them: unit length for cosine (then inner product is cosine)."""
        if self._metric != "cosine":
            return x
        x = x.copy()
        faiss.normalize_L2(x)
        return x

    def _build_index(self) -> None:
        """(Re)build the index from the stored vectors: training IVF when there are enough of them."""
        index = self._new_index()
        n = len(self._ids)
        if not index.is_trained:
            if n < self._train_size():
                self._index, self._index_stale = None, False
                return
            rng = np.random.default_rng(0)
            limit = 256 * self._params["nlist"]  # k-means gains nothing from more than ~256 points per centroid
            sample = rng.choice(n, size=limit, replace=False) if n > limit else None
            training = self._for_index(self._vectors if sample is None else self._vectors[np.sort(sample)])
            with _threads_for(len(training) * self._dim * self._params["nlist"] * 10):
                index.train(training)
        if n:
            with _threads_for(self._add_work(n)):
                index.add_with_ids(self._for_index(self._vectors), self._ids)
        self._index, self._index_stale = index, False
        self._configure_search()

    def _add_work(self, n: int) -> float:
        """Rough multiply-adds of adding ``n`` vectors (decides whether FAISS may use several threads)."""
        p = self._params
        per_vector = {"flat": 1, "hnsw": 4 * p["ef_construction"] * p["hnsw_m"]}.get(p["index"], p["nlist"])
        return float(n * self._dim * per_vector)

    def _search_work(self, n_queries: int, candidates: int) -> float:
        p = self._params
        if p["index"] == "hnsw":
            per_query = max(p["ef_search"], candidates) * p["hnsw_m"]
        else:
            per_query = p["nlist"] + p["nprobe"] * len(self._ids) / p["nlist"]
        return float(n_queries * self._dim * per_query)

    def _configure_search(self) -> None:
        if self._index is None:
            return
        base = faiss.downcast_index(self._index.index)
        if isinstance(base, faiss.IndexIVF):
            base.nprobe = min(self._params["nprobe"], base.nlist)

    # -------------------------------------------------------------------------------------------- protocol
    def add(
        self,
        ids: Sequence[int] | Tensor | np.ndarray,
        embeddings: Tensor | np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Add a batch (all or nothing); it is on disk after the next ``save()`` / ``close()``.

        Raises StoreError for ids already stored, repeated ids, a wrong dimension or non-finite values.
        """
        self._check_open()
        id_array, x, meta = check_add_batch(ids, embeddings, metadata, self._dim, self._metric)
        if len(id_array) == 0:
            return
        self._become_writer()
        present = self._rows(id_array) >= 0
        if present.any():
            raise StoreError(
                f"ids already stored in FAISS store {str(self.path)!r}: {id_array[present][:10].tolist()}"
                f"{' ...' if present.sum() > 10 else ''}; nothing of this batch was added (delete them first to replace them)"
            )
        was_trained = self._index is not None
        self._append_rows(id_array, x)
        self._meta.extend(m or None for m in meta)
        self._row_of = None
        self._dirty = True
        if was_trained and not self._index_stale:
            with _threads_for(self._add_work(len(x))):
                self._index.add_with_ids(self._for_index(x), id_array)
        elif not was_trained and len(self._ids) >= self._train_size():
            self._build_index()

    def search(
        self, queries: Tensor | np.ndarray, k: int, filter: Mapping[str, Any] | None = None
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest stored items of each query: ``(ids (Q, k) int64, distances (Q, k) float32)``.

        ``filter`` keeps only items whose metadata has all the given ``key: value`` pairs (searched exactly).
        Fewer than ``k`` items are padded with id ``-1`` and distance ``inf``.
        """
        self._check_open()
        q = check_queries(queries, self._dim, k, self._metric)
        conditions = check_filter(filter)
        n = len(self._ids)
        if conditions:
            rows = np.fromiter((metadata_matches(m or {}, conditions) for m in self._meta), dtype=bool, count=n)
            return self._exact(q, k, np.flatnonzero(rows))
        if self._index_stale:
            self._build_index()
        if self._index is None:  # an IVF index that has not seen enough vectors to train
            return self._exact(q, k, None)
        if len(q) == 0 or n == 0:
            return torch.full((len(q), k), -1, dtype=torch.int64), torch.full((len(q), k), float("inf"))
        if self.exact:
            with _threads_for(len(q) * n * self._dim):
                scores, labels = self._index.search(self._for_index(q), min(k, n))
            return _pad(labels, self._to_distance(scores), k)
        candidates = min(n, k * self._params["rerank"])
        base = faiss.downcast_index(self._index.index)
        if isinstance(base, faiss.IndexHNSW):
            base.hnsw.efSearch = max(self._params["ef_search"], candidates)
        with _threads_for(self._search_work(len(q), candidates)):
            _, labels = self._index.search(self._for_index(q), candidates)
        return self._rescore(q, labels, k)

    def _to_distance(self, scores: np.ndarray) -> np.ndarray:
        if self._metric == "euclidean":
            return np.sqrt(np.maximum(scores, 0.0))
        if self._metric == "cosine":
            return 1.0 - scores
        return -scores

    def _rescore(self, q: np.ndarray, labels: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
        """Exact distances of the candidates from the stored vectors, then the ``k`` best of them per query."""
        valid = labels >= 0
        rows = self._rows(np.where(valid, labels, 0).ravel()).reshape(labels.shape)
        candidates = torch.from_numpy(self._vectors[np.where(valid, rows, 0)])  # (Q, C, D)
        queries = torch.from_numpy(q)
        if self._metric == "euclidean":
            d = (candidates - queries[:, None, :]).norm(dim=2)
        elif self._metric == "cosine":
            d = 1.0 - torch.nn.functional.cosine_similarity(candidates, queries[:, None, :], dim=2)
        else:
            d = -(candidates * queries[:, None, :]).sum(dim=2)
        d = d.masked_fill(~torch.from_numpy(valid), float("inf"))
        kk = min(k, labels.shape[1])
        best, order = torch.topk(d, kk, dim=1, largest=False)
        ids = torch.gather(torch.from_numpy(labels), 1, order)
        return _pad(ids.numpy(), best.numpy(), k)

    def _exact(self, q: np.ndarray, k: int, rows: np.ndarray | None) -> tuple[Tensor, Tensor]:
        """Exact search over all stored vectors, or over ``rows`` of them, in chunks."""
        topk = TopK(len(q), k)
        queries = torch.from_numpy(q)
        selected = np.arange(len(self._ids)) if rows is None else rows
        for start in range(0, len(selected), _SEARCH_CHUNK):
            chunk = selected[start : start + _SEARCH_CHUNK]
            vectors = torch.from_numpy(self._vectors[chunk])
            topk.push(pairwise_distances(queries, vectors, self._metric), torch.from_numpy(self._ids[chunk]))
        return topk.result()

    def get(self, ids: Sequence[int] | Tensor | np.ndarray) -> tuple[Tensor, list[dict[str, Any]]]:
        """The stored embeddings ``(N, dim)`` and metadata of ``ids``, in the order asked; unknown ids are an error."""
        self._check_open()
        id_array = check_ids(ids)
        rows = self._rows(id_array)
        if (rows < 0).any():
            missing = id_array[rows < 0]
            more = " ..." if len(missing) > 10 else ""
            raise StoreError(f"ids not in FAISS store {str(self.path)!r}: {missing[:10].tolist()}{more}")
        return torch.from_numpy(self._vectors[rows].copy()), [dict(self._meta[r] or {}) for r in rows.tolist()]

    def contains(self, ids: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
        """Boolean mask of which ``ids`` are stored (used to resume an interrupted ``oml index``)."""
        self._check_open()
        return self._rows(check_ids(ids)) >= 0

    def delete(self, ids: Sequence[int] | Tensor | np.ndarray) -> int:
        """Delete ``ids``; returns how many were stored (unknown ids are ignored)."""
        self._check_open()
        id_array = np.unique(check_ids(ids))
        self._become_writer()
        rows = self._rows(id_array)
        found = rows >= 0
        if not found.any():
            return 0
        keep = np.ones(len(self._ids), dtype=bool)
        keep[rows[found]] = False
        self._ids, self._buffer = self._ids[keep], self._vectors[keep]
        self._meta = [m for m, kept in zip(self._meta, keep.tolist()) if kept]
        self._row_of = None
        self._dirty = True
        if self._index is not None:
            if self.index_kind == "hnsw":
                self._index_stale = True
            else:
                self._index.remove_ids(faiss.IDSelectorBatch(id_array[found]))
        return int(found.sum())

    def count(self) -> int:
        self._check_open()
        return len(self._ids)

    def ids(self) -> Tensor:
        """Every stored id, in insertion order."""
        self._check_open()
        return torch.from_numpy(self._ids.copy())

    @property
    def _vectors(self) -> np.ndarray:
        """The stored vectors, one row per id (a view of the first ``count`` rows of the growable buffer)."""
        return self._buffer[: len(self._ids)]

    def _append_rows(self, ids: np.ndarray, x: np.ndarray) -> None:
        n, extra = len(self._ids), len(ids)
        if n + extra > len(self._buffer):  # grow geometrically: many small batches must not copy the store each time
            grown = np.empty((max(n + extra, 2 * len(self._buffer), 1024), self._dim), dtype=np.float32)
            grown[:n] = self._buffer[:n]
            self._buffer = grown
        self._buffer[n : n + extra] = x
        self._ids = np.concatenate([self._ids, ids])

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the stored arrays, -1 where absent."""
        if self._row_of is None:
            self._row_of = pd.Index(self._ids)
        return np.asarray(self._row_of.get_indexer(ids), dtype=np.int64)

    # -------------------------------------------------------------------------------------------- store info
    @property
    def info(self) -> dict[str, Any]:
        """Free-form facts saved with the store (``oml index`` records the model it used here)."""
        self._check_open()
        return dict(self._info)

    def update_info(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` (JSON-serialisable) into ``info``; saved with the next ``save()``."""
        self._check_open()
        json.dumps(dict(values), allow_nan=False)
        self._become_writer()
        self._info.update(values)
        self._dirty = True

    # -------------------------------------------------------------------------------------------- persistence
    def _current_snapshot(self) -> Path | None:
        pointer = self.path / "CURRENT"
        name = ""
        for _ in range(5):  # a writer may replace CURRENT and remove the old snapshot between two reads
            if not pointer.exists():
                return None
            try:
                name = pointer.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                name = ""
            snapshot = self.path / name
            if name.startswith("snapshot-") and (snapshot / "store.json").exists():
                return snapshot
            time.sleep(0.05)
        raise StoreError(
            f"FAISS store {str(self.path)!r} is damaged: CURRENT names {name[:80]!r}, not a complete snapshot. Point "
            f"CURRENT at the newest complete snapshot-* folder (one holding store.json), or index into a new store"
        )

    def save(self) -> None:
        """Write the store to its folder atomically: a new snapshot, then the ``CURRENT`` pointer.

        On a full disk (or any write error) the partial snapshot is removed, the last saved one stays current and
        a StoreError says so; the changes are still in memory, so a later ``save()`` can retry.
        """
        self._check_open()
        self._become_writer()
        if self._index_stale:
            self._build_index()
        current = self._current_snapshot()
        number = int(current.name.split("-")[1]) + 1 if current is not None else 1
        tmp = self.path / f".tmp-{uuid.uuid4().hex}"
        final = self.path / f"snapshot-{number:06d}"
        try:
            tmp.mkdir()
            self._write_snapshot(tmp)
            if final.exists():  # left by a save that was killed before it updated CURRENT
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.path)
            pointer_tmp = self.path / f".CURRENT-{uuid.uuid4().hex}"
            try:
                pointer_tmp.write_text(final.name + "\n")
                _fsync_file(pointer_tmp)
                os.replace(pointer_tmp, self.path / "CURRENT")
            finally:
                pointer_tmp.unlink(missing_ok=True)
            _fsync_dir(self.path)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if (self.path / "CURRENT").exists() and (self.path / "CURRENT").read_text().strip() != final.name:
                shutil.rmtree(final, ignore_errors=True)
            kept = f"the last saved snapshot ({current.name}) is intact" if current is not None else "nothing was saved yet"
            # numpy reports a short write on a full disk as "N requested and M written", without an errno
            full = exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT) or "requested and" in str(exc)
            reason = f"no space left on device ({exc.strerror or exc})" if full else (exc.strerror or str(exc))
            raise StoreError(
                f"could not save FAISS store {str(self.path)!r}: {reason} ({exc.filename or self.path}); {kept} and "
                f"nothing already saved is lost. Free some space and run again (`oml index` resumes where it stopped)"
            ) from None
        self._loaded = final.name
        self._remove_old(keep=final.name)
        self._dirty = False

    # -------------------------------------------------------------------------------------------- one writer
    def _become_writer(self) -> None:
        """Take the store's writer lock (waiting for another writer), then reload if another writer saved since
        this instance loaded: a load-modify-save must start from the newest snapshot."""
        if self._lock is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / "LOCK", "a+")  # noqa: SIM115 - held open until close()
        try:
            self._wait_for_lock(handle)
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle
        current = self._current_snapshot()
        if current is not None and current.name != self._loaded:
            if self._dirty and self._loaded is not None:
                raise StoreError(f"FAISS store {str(self.path)!r} was changed by another writer while this one held changes")
            self._load(current, None, None, self._open_params)

    def _wait_for_lock(self, handle: Any) -> None:
        timeout = float(self._params["lock_timeout_s"] if hasattr(self, "_params") else _DEFAULTS["lock_timeout_s"])
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            owner = _read_owner(self.path / "LOCK")
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"FAISS store {str(self.path)!r} is being written by another process ({owner}) and stayed locked for "
                    f"{timeout:g} s; a FAISS store takes one writer at a time. Wait for that process to finish, raise "
                    f"--store-option lock_timeout_s=SECONDS, or write into another store (readers may search it meanwhile)"
                )
            if not told:
                print(f"oml: FAISS store {str(self.path)!r} is being written by another process ({owner}); waiting for it "
                      f"(up to {timeout:g} s)", file=sys.stderr, flush=True)
                told = True
            time.sleep(0.1)

    def _release_writer(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # -------------------------------------------------------------------------------------------- shards
    def shard_url(self, rank: int) -> str:
        """The FAISS store rank ``rank`` of a distributed ``oml index`` writes (merged into this one at the end)."""
        return f"faiss://{(self.path / 'shards' / f'rank-{rank:04d}').resolve()}"

    def shard_urls(self) -> list[str]:
        folder = self.path / "shards"
        return [f"faiss://{p.resolve()}" for p in sorted(folder.glob("rank-*")) if p.is_dir()] if folder.is_dir() else []

    def drop_shard(self, url: str) -> None:
        shard = Path(url[len("faiss://") :] if url.startswith("faiss://") else url).resolve()
        if shard.parent != (self.path / "shards").resolve():
            raise StoreError(f"{url!r} is not a shard of FAISS store {str(self.path)!r}")
        shutil.rmtree(shard, ignore_errors=True)
        with contextlib.suppress(OSError):
            shard.parent.rmdir()

    def _write_snapshot(self, folder: Path) -> None:
        n = len(self._ids)
        settings = {
            "format_version": _FORMAT_VERSION,
            "dim": self._dim,
            "metric": self._metric,
            "count": n,
            "params": self._params,
            "trained": self._index is not None,
            "info": self._info,
        }
        with open(folder / "ids.npy", "wb") as f:
            np.save(f, self._ids)
            _flush(f)
        with open(folder / "vectors.npy", "wb") as f:
            np.save(f, self._vectors)
            _flush(f)
        with open(folder / "metadata.jsonl", "w", encoding="utf-8") as f:
            for m in self._meta:
                f.write(metadata_json(m) if m else "{}")
                f.write("\n")
            _flush(f)
        if self._index is not None:
            faiss.write_index(self._index, str(folder / "index.faiss"))
            _fsync_file(folder / "index.faiss")
        with open(folder / "store.json", "w", encoding="utf-8") as f:  # written last: its presence marks a complete snapshot
            json.dump(settings, f, indent=1)
            _flush(f)
        _fsync_dir(folder)

    def _remove_old(self, keep: str) -> None:
        for child in self.path.iterdir():
            stale = child.name.startswith(("snapshot-", ".tmp-", ".CURRENT-")) and child.name != keep
            if stale:
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)

    def _load_current(self, dim: int | None, metric: str | None, params: Mapping[str, Any]) -> Path | None:
        """Load the current snapshot (retrying when a writer replaces it while it is read); None if there is none."""
        for attempt in range(5):
            snapshot = self._current_snapshot()
            if snapshot is None:
                return None
            try:
                self._load(snapshot, dim, metric, params)
                return snapshot
            except FileNotFoundError:
                if attempt == 4 or self._current_snapshot() == snapshot:
                    raise StoreError(f"FAISS store {str(self.path)!r} is damaged: files of {snapshot.name} are missing") from None
        return None

    def _load(self, snapshot: Path, dim: int | None, metric: str | None, params: Mapping[str, Any]) -> None:
        where = f"FAISS store {str(self.path)!r}"
        try:
            settings = json.loads((snapshot / "store.json").read_text(encoding="utf-8"))
            stored_dim, stored_metric = int(settings["dim"]), str(settings["metric"])
            saved = {**_DEFAULTS, **settings["params"]}
            count, trained = int(settings["count"]), bool(settings["trained"])
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{where} is damaged: {snapshot.name}/store.json cannot be read ({type(exc).__name__}: {exc}). "
                f"Restore the folder from a backup or index the images again into a new store"
            ) from None
        self._dim, self._metric = stored_dim, stored_metric
        if dim is not None and dim != self._dim:
            raise StoreError(f"{where} holds {self._dim}-d embeddings, but dim={dim} was asked for; open it without dim")
        if metric is not None and metric != self._metric:
            raise StoreError(f"{where} was created with metric {self._metric!r}, but metric={metric!r} was asked for")
        for name in _BUILD_PARAMS:
            if params.get(name) is not None and params[name] != saved[name]:
                raise StoreError(
                    f"{where} was built with {name}={saved[name]!r}; it cannot be opened with {name}={params[name]!r} "
                    f"(build options are fixed when a store is created; nprobe, ef_search and rerank may change)"
                )
        self._params = {**saved, **{k: params[k] for k in _SEARCH_PARAMS if params.get(k) is not None}}
        self._info = dict(settings.get("info", {}))
        self._ids = _load_array(snapshot / "ids.npy", where, np.int64, (count,))
        self._buffer = _load_array(snapshot / "vectors.npy", where, np.float32, (count, self._dim))
        try:
            with open(snapshot / "metadata.jsonl", encoding="utf-8") as f:
                self._meta = [json.loads(line) or None for line in f]
        except (UnicodeDecodeError, ValueError) as exc:
            raise StoreError(f"{where} is damaged: {snapshot.name}/metadata.jsonl is not JSON lines ({exc})") from None
        if not (len(self._ids) == len(self._buffer) == len(self._meta) == count):
            raise StoreError(f"{where} is damaged: snapshot {snapshot.name} holds inconsistent counts")
        self._row_of = None
        self._index, self._index_stale = None, False
        if trained:
            try:
                self._index = faiss.read_index(str(snapshot / "index.faiss"))
                if self._index.ntotal != count or self._index.d != self._dim:
                    raise RuntimeError(f"it holds {self._index.ntotal} vectors of dimension {self._index.d}")
                self._configure_search()
            except RuntimeError as exc:
                # the vectors are the source of truth: a damaged index file costs a rebuild, never data
                warnings.warn(
                    f"{where}: {snapshot.name}/index.faiss is damaged ({str(exc).strip().splitlines()[-1][:200]}); "
                    f"rebuilding the index from the {count} stored vectors (saved at the next write)",
                    stacklevel=3,
                )
                self._build_index()
        elif self._params["index"] in ("flat", "hnsw"):
            self._build_index()
        self._loaded = snapshot.name

    # -------------------------------------------------------------------------------------------- lifetime
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"FAISS store {str(self.path)!r} is closed")

    def close(self) -> None:
        """Save unsaved changes, release the index and the writer lock."""
        if self._closed:
            return
        try:
            if self._dirty:
                self.save()
        finally:
            self._release_writer()
        self._closed = True
        self._index = None

    def __enter__(self) -> FaissStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ module helpers
def _pad(labels: np.ndarray, distances: np.ndarray, k: int) -> tuple[Tensor, Tensor]:
    q = labels.shape[0]
    ids = torch.full((q, k), -1, dtype=torch.int64)
    dist = torch.full((q, k), float("inf"), dtype=torch.float32)
    width = min(k, labels.shape[1])
    ids[:, :width] = torch.from_numpy(np.ascontiguousarray(labels[:, :width], dtype=np.int64))
    dist[:, :width] = torch.from_numpy(np.ascontiguousarray(distances[:, :width], dtype=np.float32))
    missing = ids < 0
    dist[missing] = float("inf")
    return ids, dist


def _read_owner(lock: Path) -> str:
    try:
        pid = lock.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


def _load_array(path: Path, where: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A numeric array of a snapshot, checked: never unpickled, of the expected dtype and shape."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise StoreError(
            f"{where} is damaged: {path.parent.name}/{path.name} is not a readable numeric .npy file ({exc}). "
            f"Restore the folder from a backup or index the images again into a new store"
        ) from None
    if array.dtype != dtype or array.shape != shape:
        raise StoreError(
            f"{where} is damaged: {path.parent.name}/{path.name} holds {array.dtype} {tuple(array.shape)}, expected "
            f"{np.dtype(dtype)} {shape}. Restore the folder from a backup or index the images again into a new store"
        )
    return array


@contextlib.contextmanager
def _threads_for(work: float) -> Iterator[None]:
    """One OpenMP thread for small jobs: waking a thread team costs more than it saves there, and on a busy machine
    (or next to torch's own OpenMP pool) the team's barriers can turn microseconds into a second."""
    if work >= _PARALLEL_WORK:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _flush(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
