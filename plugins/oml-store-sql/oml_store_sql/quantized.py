"""``QuantizedSqlStore``: a SQL store searched through compact codes kept in a side table, re-scored exactly.

``quantize="sq8"`` (int8 per dimension, 1/4 of float32) or ``"binary"`` (``n_bits`` sign bits, 2 per dimension by
default: 1/16 of float32). The codes live in the table ``<table>_codes`` (id, code), written in the same transaction
as the embeddings, so the two never disagree. A search streams only the codes (a sixteenth of the bytes for binary),
keeps the ``candidates`` nearest ids per query, then fetches their float vectors and re-scores them exactly, so the
distances returned are exact. Filtered searches are the plain store's exact ones.

The quantiser is fitted on the first batch added (or on the rows present when a plain store is first opened with
``quantize``, whose codes are then filled in) and saved in ``<table>_info``. Write through this class: rows added
by a plain ``SqlStore`` afterwards have no codes until the store is opened with ``quantize`` again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

import attrs
import numpy as np
import sqlalchemy as sa
import torch
from torch import Tensor

from oml_core.quantization import (
    BinaryQuantizer,
    Int8Quantizer,
    QuantizedSearchMixin,
    fit_quantizer,
    hamming_distances,
    quantizer_from_state,
)
from oml_core.stores import StoreError, TopK, check_add_batch, check_queries, metadata_json, pairwise_distances
from oml_store_sql.store import _INSERT_CHUNK, SqlStore, SqlStoreConfig, _chunks, _safe_url

__all__ = ["QuantizedSqlStore", "QuantizedSqlStoreConfig", "create_sql_store"]

_QUANTIZER_KEY = "quantizer"
_RESCORE_QUERIES = 16  # queries re-scored together (bounds the (queries x candidates) distance block)


@attrs.frozen(kw_only=True)
class QuantizedSqlStoreConfig(SqlStoreConfig):
    """The ``sql`` store's options plus ``quantize`` (``sq8``, ``binary``; default: none, or as saved), ``n_bits``
    (binary code length, default ``2 * dim``) and ``candidates`` (items re-scored per query)."""

    quantize: Literal["none", "sq8", "binary"] | None = None
    n_bits: int | None = None
    candidates: int | None = None


class QuantizedSqlStore(QuantizedSearchMixin, SqlStore):
    """A SqlStore with an int8 or binary code index.

    Example:
        >>> with QuantizedSqlStore("sqlite:///gallery.db", quantize="binary", dim=128) as store:   # doctest: +SKIP
        ...     store.add(ids, vectors)
        ...     ids, distances = store.search(queries, k=10)
    """

    def __init__(
        self, url: str, *, quantize: str, n_bits: int | None = None, candidates: int | None = None, **options: Any
    ) -> None:
        self._set_quantize_options(quantize, n_bits, candidates)
        super().__init__(url, **options)
        id_type: Any = sa.Integer if self._sqlite else sa.BigInteger
        self._codes = sa.Table(
            f"{self._table_name}_codes",
            sa.MetaData(),
            sa.Column("id", id_type, primary_key=True, autoincrement=False),
            sa.Column("code", sa.LargeBinary, nullable=False),
        )
        self._quantizer: Int8Quantizer | BinaryQuantizer | None = None
        try:
            self._retrying(self._prepare)
        except BaseException:
            self.close()
            raise

    # -------------------------------------------------------------------------------------------- set-up
    def _prepare(self) -> None:
        info = self._info_table()
        with self._write() as conn:
            self._codes.create(conn, checkfirst=True)
            saved = conn.execute(sa.select(info.c.value).where(info.c.key == _QUANTIZER_KEY)).scalar_one_or_none()
            if saved is not None:
                state = json.loads(saved)
                if state["kind"] != self._quantize:
                    raise StoreError(
                        f"store {_safe_url(self._engine)!r} (table {self._table_name!r}) was quantised with "
                        f"{state['kind']!r}, not {self._quantize!r}"
                    )
                self._quantizer = quantizer_from_state(state)
            # rows without codes (added by a plain SqlStore): fit on them if needed, then fill their codes in
            missing = sa.select(self._table.c.id, self._table.c.embedding).where(
                ~self._table.c.id.in_(sa.select(self._codes.c.id))
            )
            rows = conn.execute(missing).all()
            if rows:
                ids = np.array([r.id for r in rows], dtype=np.int64)
                x = np.stack([self._decode(r.embedding) for r in rows])
                self._insert_codes(conn, ids, x)

    def _ensure_quantizer(self, conn: sa.Connection, x: np.ndarray) -> Int8Quantizer | BinaryQuantizer:
        if self._quantizer is None:
            quantizer = fit_quantizer(self._quantize, self._prepared(x), self._n_bits)
            info = self._info_table()
            conn.execute(sa.insert(info), {"key": _QUANTIZER_KEY, "value": json.dumps(quantizer.state())})
            self._quantizer = quantizer
        return self._quantizer

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        """Vectors as the codes see them: unit length for cosine."""
        if self._metric != "cosine":
            return x
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def _insert_codes(self, conn: sa.Connection, ids: np.ndarray, x: np.ndarray) -> None:
        quantizer = self._ensure_quantizer(conn, x)
        codes = quantizer.encode(self._prepared(x))
        rows = [{"id": int(i), "code": c.tobytes()} for i, c in zip(ids.tolist(), codes)]
        for start in range(0, len(rows), _INSERT_CHUNK):
            conn.execute(sa.insert(self._codes), rows[start : start + _INSERT_CHUNK])

    # -------------------------------------------------------------------------------------------- writes
    def add(
        self,
        ids: Sequence[int] | Tensor | np.ndarray,
        embeddings: Tensor | np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Add a batch and its codes in one transaction: all of it, or (on any error) none of it."""
        self._check_open()
        id_array, x, meta = check_add_batch(ids, embeddings, metadata, self._dim, self._metric)
        if len(id_array) == 0:
            return
        values: list[Any] = [memoryview(row) for row in x] if self._sqlite else list(x)
        texts: list[Any] = [metadata_json(m) for m in meta] if self._sqlite else list(meta)
        rows = [{"id": int(i), "embedding": v, "metadata": m} for i, v, m in zip(id_array.tolist(), values, texts)]
        fitted_before = self._quantizer is not None

        def insert() -> None:
            with self._write() as conn:
                for start in range(0, len(rows), _INSERT_CHUNK):
                    conn.execute(sa.insert(self._table), rows[start : start + _INSERT_CHUNK])
                self._insert_codes(conn, id_array, x)

        try:
            self._retrying(insert)
        except BaseException as exc:
            if not fitted_before:
                self._quantizer = None  # its state was rolled back with the batch
            if isinstance(exc, sa.exc.IntegrityError):
                present = id_array[self.contains(id_array)]
                raise StoreError(
                    f"ids already stored in {_safe_url(self._engine)!r} (table {self._table_name!r}): "
                    f"{present[:10].tolist()}; nothing of this batch was added (delete them first to replace them)"
                ) from None
            raise

    def delete(self, ids: Sequence[int] | Tensor | np.ndarray) -> int:
        """Delete ``ids`` and their codes in one transaction; returns how many were stored."""
        self._check_open()
        from oml_core.stores import check_ids

        id_array = check_ids(ids)

        def remove() -> int:
            removed = 0
            with self._write() as conn:
                for chunk in _chunks(id_array):
                    removed += conn.execute(sa.delete(self._table).where(self._table.c.id.in_(chunk.tolist()))).rowcount
                    conn.execute(sa.delete(self._codes).where(self._codes.c.id.in_(chunk.tolist())))
            return removed

        return self._retrying(remove)

    # -------------------------------------------------------------------------------------------- search
    def search(self, queries: Tensor | np.ndarray, k: int, filter: Mapping[str, Any] | None = None) -> tuple[Tensor, Tensor]:
        """Candidates by code (streamed in chunks), then the exact distances of their float vectors."""
        self._check_open()
        if filter or self._quantizer is None:
            return super().search(queries, k, filter)
        q = check_queries(queries, self._dim, k, self._metric)
        if len(q) == 0:
            return torch.empty(0, k, dtype=torch.int64), torch.empty(0, k, dtype=torch.float32)
        candidate_ids = self._candidates_by_code(q, self.n_candidates(k))
        return self._rescore(q, candidate_ids, k)

    def _candidates_by_code(self, q: np.ndarray, n: int) -> Tensor:
        quantizer = self._quantizer
        assert quantizer is not None
        prepared = self._prepared(q)
        query_codes = quantizer.encode(prepared) if isinstance(quantizer, BinaryQuantizer) else None
        topk = TopK(len(q), n)
        # keyset pagination over the codes; the table name is a checked identifier
        sql = f'SELECT id, code FROM "{self._codes.name}" WHERE id > {{last}} ORDER BY id LIMIT {{n}}'  # noqa: S608
        sql = sql.format(last="?" if self._sqlite else "%s", n="?" if self._sqlite else "%s")
        width = quantizer.code_bytes
        with self._read() as conn:
            last = -1
            while True:
                # straight from the DBAPI cursor: SQLAlchemy's row objects would cost more than the distances here
                result = conn.exec_driver_sql(sql, (last, self.chunk_size))
                rows = result.cursor.fetchall() if result.cursor is not None else []
                result.close()
                if not rows:
                    break
                chunk_ids = np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=len(rows))
                codes = np.frombuffer(b"".join(map(itemgetter(1), rows)), dtype=np.uint8).reshape(len(rows), width)
                if query_codes is not None:
                    approx = torch.from_numpy(hamming_distances(query_codes, codes).astype(np.float32))
                else:
                    decoded = torch.from_numpy(quantizer.decode(codes))  # type: ignore[union-attr]
                    approx = pairwise_distances(torch.from_numpy(prepared), decoded, self._metric)
                topk.push(approx, torch.from_numpy(chunk_ids))
                last = int(chunk_ids[-1])
                if len(rows) < self.chunk_size:
                    break
        return topk.result()[0]

    def _vectors_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The float vectors of ``ids`` (without their metadata) and which of them are still stored."""
        found: dict[int, np.ndarray] = {}
        with self._read() as conn:
            for chunk in _chunks(ids):
                if self._sqlite:  # straight from the DBAPI cursor, as the plain store's scan does
                    marks = ",".join("?" * len(chunk))
                    sql = f'SELECT id, embedding FROM "{self._table_name}" WHERE id IN ({marks})'  # noqa: S608
                    result = conn.exec_driver_sql(sql, tuple(chunk.tolist()))
                    rows = result.cursor.fetchall() if result.cursor is not None else []
                    result.close()
                    if rows:
                        data = np.frombuffer(b"".join(map(itemgetter(1), rows)), dtype=np.float32).reshape(len(rows), -1)
                        found.update(zip(map(itemgetter(0), rows), data))
                    continue
                statement = sa.select(self._table.c.id, self._table.c.embedding).where(self._table.c.id.in_(chunk.tolist()))
                for row_id, embedding in conn.execute(statement):
                    found[int(row_id)] = self._decode(embedding)
        # an id deleted since its code was read has no vector: it cannot be a result
        missing = np.zeros(self._dim, dtype=np.float32)
        present = np.fromiter((int(i) in found for i in ids), dtype=bool, count=len(ids))
        return np.stack([found.get(int(i), missing) for i in ids]).astype(np.float32), present

    def _rescore(self, q: np.ndarray, candidate_ids: Tensor, k: int) -> tuple[Tensor, Tensor]:
        result = TopK(len(q), k)
        for start in range(0, len(q), _RESCORE_QUERIES):
            block = candidate_ids[start : start + _RESCORE_QUERIES]
            unique = torch.unique(block[block >= 0])
            if len(unique) == 0:
                continue
            vectors, present = self._vectors_of(unique.numpy())
            # each query takes its own candidates only: (B, C, D) vectors, distances of the pairs
            position = torch.searchsorted(unique, block.clamp_min(0))
            queries = torch.from_numpy(q[start : start + _RESCORE_QUERIES])
            own = _pair_distances(queries, torch.from_numpy(vectors)[position], self._metric)
            own[(block < 0) | ~torch.from_numpy(present)[position]] = float("inf")
            kk = min(k, own.shape[1])
            best, order = torch.topk(own, kk, dim=1, largest=False, sorted=True)
            ids = torch.gather(block, 1, order)
            ids[torch.isinf(best)] = -1
            result.ids[start : start + len(block), :kk], result.distances[start : start + len(block), :kk] = ids, best
        return result.result()


def _pair_distances(queries: Tensor, vectors: Tensor, metric: str) -> Tensor:
    """``(B, C)`` distances of each query ``(B, D)`` to its own candidates ``(B, C, D)``, in the store's convention."""
    if metric == "euclidean":
        return (vectors - queries[:, None, :]).norm(dim=2)
    if metric == "cosine":
        return 1.0 - torch.nn.functional.cosine_similarity(vectors, queries[:, None, :], dim=2)
    return -(vectors * queries[:, None, :]).sum(dim=2)


def _saved_kind(store: SqlStore) -> str | None:
    info = store._info_table()
    with store._read() as conn:
        saved = conn.execute(sa.select(info.c.value).where(info.c.key == _QUANTIZER_KEY)).scalar_one_or_none()
    return str(json.loads(saved)["kind"]) if saved else None


def create_sql_store(**fields: Any) -> SqlStore:
    """The ``sql`` store's factory: a QuantizedSqlStore when ``quantize`` is asked for or saved in the store."""
    url = fields.pop("url")
    quantize = fields.pop("quantize", None)
    n_bits, candidates = fields.pop("n_bits", None), fields.pop("candidates", None)
    if quantize is None:
        store = SqlStore(url, **fields)
        quantize = _saved_kind(store)
        if quantize is None:
            return store
        store.close()
        fields = {**fields, "dim": None, "metric": None}
    if quantize == "none":
        if n_bits is not None or candidates is not None:
            raise StoreError("n_bits and candidates apply to quantised stores only (quantize=sq8 or binary)")
        return SqlStore(url, **fields)
    return QuantizedSqlStore(url, quantize=quantize, n_bits=n_bits, candidates=candidates, **fields)
