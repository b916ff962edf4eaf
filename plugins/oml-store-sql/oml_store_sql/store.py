"""``SqlStore``: embeddings in a SQL table, through SQLAlchemy.

* SQLite (the embedded default; a file path is enough): embeddings are float32 BLOBs and search is exact,
  streaming the table in chunks of ``chunk_size`` rows so that the gallery never has to fit in memory.
  The database runs in WAL mode; every write batch is one ``BEGIN IMMEDIATE`` transaction, so concurrent writers
  queue on SQLite's lock (up to ``timeout_s``) instead of failing, and a killed writer leaves only whole batches.
* PostgreSQL with the pgvector extension (for scale): a ``vector(dim)`` column with an HNSW index, searched with
  pgvector's ``<->`` (L2), ``<=>`` (cosine) and ``<#>`` (negative inner product) operators.

Metadata is stored as JSON (SQLite ``TEXT``, PostgreSQL ``jsonb``) and is only ever bound as a parameter. The
table name is the one identifier written into SQL, and it must be a plain identifier.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import attrs
import numpy as np
import sqlalchemy as sa
import torch
from torch import Tensor

from oml_core.stores import (
    METRICS,
    StoreError,
    TopK,
    check_add_batch,
    check_filter,
    check_identifier,
    check_ids,
    check_queries,
    metadata_json,
    pairwise_distances,
)

__all__ = ["SqlStore", "SqlStoreConfig"]

T = TypeVar("T")
_FORMAT_VERSION = "1"
_ID_CHUNK = 5000  # ids per IN (...) list: far below SQLite's and PostgreSQL's bound-parameter limits
_INSERT_CHUNK = 5000


@attrs.frozen(kw_only=True)
class SqlStoreConfig:
    """Options of the ``sql`` store.

    ``url``: an SQLAlchemy URL, ``sqlite:///gallery.db`` or ``postgresql://user@host/db`` (psycopg 3 is used
    when no driver is named). ``dim`` / ``metric`` are needed only to create the store. ``table`` is the table
    name (one database can hold several stores). ``chunk_size``: rows per chunk of SQLite's exact search.
    ``timeout_s``: how long a SQLite writer waits for another one. ``index`` (PostgreSQL): ``"hnsw"`` builds
    pgvector's HNSW index (``hnsw_m``, ``hnsw_ef_construction``; searched with ``ef_search`` candidates),
    ``"none"`` searches exactly by a sequential scan. ``create=False``: open an existing store only (a missing
    one is an error and nothing, not even an empty SQLite file, is created).

    Opens ``sqlite:///PATH``, plain paths ending in ``.db`` / ``.sqlite`` / ``.sqlite3`` and ``postgresql://``
    (or ``postgres://``) URLs (``oml_core.stores.StoreLocator``).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("sqlite", "postgresql", "postgres")

    url: str
    dim: int | None = None
    metric: Literal["euclidean", "cosine", "dot"] | None = None
    table: str = "embeddings"
    chunk_size: int = 65536
    timeout_s: float = 60.0
    index: Literal["hnsw", "none"] = "hnsw"
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    ef_search: int = 100
    create: bool = True

    @classmethod
    def locate(cls, url: str) -> dict[str, Any] | None:
        """The ``url`` field for ``url`` if this store opens it (see ``oml_core.stores.StoreLocator``)."""
        lowered = url.lower()
        if lowered.startswith(("sqlite:", "postgresql:", "postgresql+")):
            return {"url": url}
        if lowered.startswith("postgres:"):  # the short form libpq accepts but SQLAlchemy does not
            return {"url": "postgresql:" + url[len("postgres:") :]}
        if "://" not in url and Path(url).suffix.lower() in _SQLITE_SUFFIXES:
            return {"url": f"sqlite:///{url}"}
        return None


_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class SqlStore:
    """An EmbeddingStore in SQLite or PostgreSQL (pgvector).

    Example:
        >>> import torch
        >>> with SqlStore("sqlite:///gallery.db", dim=4, metric="euclidean") as store:  # doctest: +SKIP
        ...     store.add([10, 11], torch.eye(4)[:2], metadata=[{"path": "a.jpg"}, {"path": "b.jpg"}])
        ...     store.search(torch.eye(4)[:1], k=2)
        (tensor([[10, 11]]), tensor([[0.0000, 1.4142]]))
    """

    def __init__(
        self,
        url: str,
        *,
        dim: int | None = None,
        metric: str | None = None,
        table: str = "embeddings",
        chunk_size: int = 65536,
        timeout_s: float = 60.0,
        index: str = "hnsw",
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        ef_search: int = 100,
        create: bool = True,
    ) -> None:
        self._table_name = check_identifier(table, "table")
        if metric is not None and metric not in METRICS:
            raise StoreError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise StoreError(f"dim must be a positive integer, got {dim!r}")
        for name, value in (("chunk_size", chunk_size), ("hnsw_m", hnsw_m), ("hnsw_ef_construction", hnsw_ef_construction),
                            ("ef_search", ef_search)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise StoreError(f"{name} must be a positive integer, got {value!r}")
        if index not in ("hnsw", "none"):
            raise StoreError(f"index must be 'hnsw' or 'none', got {index!r}")
        self.url = url
        self.chunk_size = chunk_size
        self.ef_search = ef_search
        self._index = index
        self._hnsw = (hnsw_m, hnsw_ef_construction)
        self._closed = False
        self._create = create
        self._engine = _create_engine(url, timeout_s, create=create)
        self._sqlite = self._engine.dialect.name == "sqlite"
        if not self._sqlite and self._engine.dialect.name != "postgresql":
            self._engine.dispose()
            raise StoreError(f"store URL {url!r}: only SQLite and PostgreSQL are supported, not {self._engine.dialect.name}")
        try:
            self._dim, self._metric = self._open_or_create(dim, metric)
        except sa.exc.IntegrityError:
            self._engine.dispose()
            raise
        except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:  # not a database, damaged, server down...
            self._engine.dispose()
            raise StoreError(_database_problem(self._engine, exc)) from None
        except BaseException:
            self._engine.dispose()
            raise
        self._table = self._make_table(self._dim)

    # -------------------------------------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def exact(self) -> bool:
        """Whether ``search`` is exact (SQLite; PostgreSQL without an index) or approximate (pgvector HNSW)."""
        return self._sqlite or self._index == "none"

    @property
    def expected_recall(self) -> float:
        """The recall@10 the contract checks expect (1.0 when exact)."""
        return 1.0 if self.exact else 0.9

    @property
    def backend(self) -> str:
        return "sqlite" if self._sqlite else "postgresql"

    def __repr__(self) -> str:
        return f"SqlStore({_safe_url(self._engine)!r}, table={self._table_name!r}, dim={self._dim}, metric={self._metric!r})"

    # -------------------------------------------------------------------------------------------- set-up
    def _info_table(self) -> sa.Table:
        return sa.Table(
            f"{self._table_name}_info",
            sa.MetaData(),
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )

    def _make_table(self, dim: int) -> sa.Table:
        if self._sqlite:
            # INTEGER PRIMARY KEY makes the id SQLite's rowid: no second index, and keyset scans by id are cheap
            id_type: Any = sa.Integer
            embedding_type: Any = sa.LargeBinary
            metadata_type: Any = sa.Text
        else:
            from pgvector.sqlalchemy import VECTOR
            from sqlalchemy.dialects.postgresql import JSONB

            id_type, embedding_type, metadata_type = sa.BigInteger, VECTOR(dim), JSONB
        return sa.Table(
            self._table_name,
            sa.MetaData(),
            sa.Column("id", id_type, primary_key=True, autoincrement=False),
            sa.Column("embedding", embedding_type, nullable=False),
            sa.Column("metadata", metadata_type, nullable=False),
        )

    def _open_or_create(self, dim: int | None, metric: str | None) -> tuple[int, str]:
        info = self._info_table()
        with self._write() as conn:
            if not self._sqlite:
                # one creator at a time: concurrent CREATE EXTENSION / CREATE TABLE IF NOT EXISTS can collide
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(self._table_name.encode())})
                try:
                    conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
                except sa.exc.DBAPIError as exc:
                    raise StoreError(
                        f"store {_safe_url(self._engine)!r} needs the pgvector extension, which could not be enabled "
                        f"({_first_line(exc)}). Install pgvector on the server (scripts/postgres.sh starts a local one)."
                    ) from None
            info.create(conn, checkfirst=True)
            stored = {row.key: row.value for row in conn.execute(sa.select(info.c.key, info.c.value))}
            if stored:
                stored_dim, stored_metric = int(stored["dim"]), stored["metric"]
                if dim is not None and dim != stored_dim:
                    raise StoreError(
                        f"store {_safe_url(self._engine)!r} (table {self._table_name!r}) holds {stored_dim}-d embeddings, "
                        f"but dim={dim} was asked for; open it without dim or use another table/file"
                    )
                if metric is not None and metric != stored_metric:
                    raise StoreError(
                        f"store {_safe_url(self._engine)!r} (table {self._table_name!r}) was created with metric "
                        f"{stored_metric!r}, but metric={metric!r} was asked for"
                    )
                self._make_table(stored_dim).create(conn, checkfirst=True)
                self._ensure_index(conn, stored_dim, stored_metric)
                return stored_dim, stored_metric
            if not self._create:
                raise StoreError(_missing_store_message(_safe_url(self._engine), self._table_name))
            if dim is None:
                raise StoreError(
                    f"store {_safe_url(self._engine)!r} (table {self._table_name!r}) does not exist yet; pass dim= "
                    f"(and metric=, default 'euclidean') to create it"
                )
            metric = metric or "euclidean"
            if conn.dialect.has_table(conn, self._table_name):
                raise StoreError(
                    f"table {self._table_name!r} already exists in {_safe_url(self._engine)!r} but is not an OML store "
                    f"(it has no {self._table_name}_info table); choose another table name"
                )
            self._make_table(dim).create(conn)
            conn.execute(
                sa.insert(info),
                [
                    {"key": "dim", "value": str(dim)},
                    {"key": "metric", "value": metric},
                    {"key": "format_version", "value": _FORMAT_VERSION},
                ],
            )
            self._ensure_index(conn, dim, metric)
            return dim, metric

    def _ensure_index(self, conn: sa.Connection, dim: int, metric: str) -> None:
        if self._sqlite or self._index == "none":
            return
        if dim > 2000:
            raise StoreError(f"pgvector's HNSW index supports at most 2000 dimensions, this store has {dim}; use index='none'")
        opclass = {"euclidean": "vector_l2_ops", "cosine": "vector_cosine_ops", "dot": "vector_ip_ops"}[metric]
        m, ef_construction = self._hnsw
        # identifiers are checked plain names and the numbers are ints: nothing user-written is spliced in here
        conn.execute(
            sa.text(
                f'CREATE INDEX IF NOT EXISTS "{self._table_name}_hnsw" ON "{self._table_name}" '
                f"USING hnsw (embedding {opclass}) WITH (m = {int(m)}, ef_construction = {int(ef_construction)})"
            )
        )

    def create_index(self) -> None:
        """Build pgvector's HNSW index now (PostgreSQL; a no-op when it exists). Bulk loads are faster when the
        store is created with ``index="none"`` and the index is built afterwards with this method."""
        self._check_open()
        if self._sqlite:
            return
        self._index = "hnsw"
        with self._write() as conn:
            self._ensure_index(conn, self._dim, self._metric)

    # -------------------------------------------------------------------------------------------- transactions
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE), because a deferred
        transaction that reads first and writes later fails at once when another writer got in between."""
        with _database_errors(self._engine), self._engine.connect() as conn:
            if self._sqlite:
                conn.execution_options(oml_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """One read transaction: every chunk of a search sees the same snapshot."""
        with _database_errors(self._engine), self._engine.connect() as conn, conn.begin():
            yield conn

    def _retrying(self, operation: Callable[[], T]) -> T:
        """Run ``operation``, retrying a few times when SQLite reports that the database is locked (possible when
        a lock is held longer than the busy timeout, e.g. by a long search in another process)."""
        for attempt in range(5):
            try:
                return operation()
            except sa.exc.OperationalError as exc:
                locked = "locked" in str(exc.orig) or "busy" in str(exc.orig)
                if not (self._sqlite and locked) or attempt == 4:
                    raise StoreError(f"store {_safe_url(self._engine)!r}: {_first_line(exc)}") from exc
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {_safe_url(self._engine)!r} (table {self._table_name!r}) is closed")

    # -------------------------------------------------------------------------------------------- protocol
    def add(
        self,
        ids: Sequence[int] | Tensor | np.ndarray,
        embeddings: Tensor | np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> None:
        """Add a batch in one transaction: all of it is stored, or (on any error) none of it.

        Raises StoreError for ids already stored, repeated ids, a wrong dimension or non-finite values.
        """
        self._check_open()
        id_array, x, meta = check_add_batch(ids, embeddings, metadata, self._dim, self._metric)
        if self._sqlite:
            values: list[Any] = [memoryview(row) for row in x]
            texts: list[Any] = [metadata_json(m) for m in meta]
        else:
            values, texts = list(x), meta
        rows = [{"id": int(i), "embedding": v, "metadata": m} for i, v, m in zip(id_array.tolist(), values, texts)]

        def insert() -> None:
            with self._write() as conn:
                for start in range(0, len(rows), _INSERT_CHUNK):
                    conn.execute(sa.insert(self._table), rows[start : start + _INSERT_CHUNK])

        try:
            if rows:
                self._retrying(insert)
        except sa.exc.IntegrityError:
            present = id_array[self.contains(id_array)]
            raise StoreError(
                f"ids already stored in {_safe_url(self._engine)!r} (table {self._table_name!r}): {present[:10].tolist()}"
                f"{' ...' if len(present) > 10 else ''}; nothing of this batch was added (delete them first to replace them)"
            ) from None

    def search(
        self, queries: Tensor | np.ndarray, k: int, filter: Mapping[str, Any] | None = None
    ) -> tuple[Tensor, Tensor]:
        """The ``k`` nearest stored items of each query: ``(ids (Q, k) int64, distances (Q, k) float32)``.

        ``filter`` keeps only items whose metadata has all the given ``key: value`` pairs. Fewer than ``k``
        matches are padded with id ``-1`` and distance ``inf``.
        """
        self._check_open()
        q = check_queries(queries, self._dim, k, self._metric)
        conditions = check_filter(filter)
        if len(q) == 0:
            return torch.empty(0, k, dtype=torch.int64), torch.empty(0, k, dtype=torch.float32)
        if self._sqlite:
            return self._search_sqlite(q, k, conditions)
        return self._search_postgres(q, k, conditions)

    def _search_sqlite(self, q: np.ndarray, k: int, conditions: dict[str, Any]) -> tuple[Tensor, Tensor]:
        queries = torch.from_numpy(q)
        topk = TopK(len(q), k)
        where, params = _sqlite_filter_sql(conditions)
        # keyset pagination: each chunk starts after the last id of the previous one (an index seek, not OFFSET);
        # the table name is a checked identifier and `where` holds only placeholders
        sql = f'SELECT id, embedding FROM "{self._table_name}" WHERE id > ?{where} ORDER BY id LIMIT ?'  # noqa: S608
        row_bytes = 4 * self._dim
        with self._read() as conn:
            last = -1
            while True:
                result = conn.exec_driver_sql(sql, (last, *params, self.chunk_size))
                # straight from the DBAPI cursor: SQLAlchemy's row objects would cost more than the distances here
                rows = result.cursor.fetchall() if result.cursor is not None else []
                result.close()
                if not rows:
                    break
                data = bytearray().join(map(itemgetter(1), rows))  # writable, so torch wraps it without a copy
                if len(data) != row_bytes * len(rows):
                    bad = [r[0] for r in rows if len(r[1]) != row_bytes][:5]
                    raise StoreError(f"store {self.url!r}: rows {bad} do not hold {self._dim} float32 values (damaged table)")
                chunk_ids = torch.from_numpy(np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=len(rows)))
                vectors = torch.from_numpy(np.frombuffer(data, dtype=np.float32).reshape(len(rows), self._dim))
                topk.push(pairwise_distances(queries, vectors, self._metric), chunk_ids)
                last = int(chunk_ids[-1])
                if len(rows) < self.chunk_size:
                    break
        return topk.result()

    def _search_postgres(self, q: np.ndarray, k: int, conditions: dict[str, Any]) -> tuple[Tensor, Tensor]:
        column = self._table.c.embedding
        ids = torch.full((len(q), k), -1, dtype=torch.int64)
        distances = torch.full((len(q), k), math.inf, dtype=torch.float32)
        query_vector = sa.bindparam("query", type_=column.type)
        distance = {
            "euclidean": column.l2_distance,
            "cosine": column.cosine_distance,
            "dot": column.max_inner_product,  # pgvector's <#> is the negative inner product: our "dot" distance
        }[self._metric](query_vector)
        statement = sa.select(self._table.c.id, distance.label("distance")).order_by(distance).limit(k)
        if conditions:
            from sqlalchemy.dialects.postgresql import JSONB

            statement = statement.where(self._table.c.metadata.op("@>")(sa.bindparam("filter", type_=JSONB)))
        with self._read() as conn:
            if self._index == "hnsw":
                # ef_search bounds how many candidates HNSW returns: at least k, or some rows would be lost
                conn.execute(sa.text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(max(self.ef_search, k))})
            for row_index, vector in enumerate(q):
                params: dict[str, Any] = {"query": vector}
                if conditions:
                    params["filter"] = conditions
                found = conn.execute(statement, params).all()
                if found:
                    ids[row_index, : len(found)] = torch.tensor([r.id for r in found], dtype=torch.int64)
                    distances[row_index, : len(found)] = torch.tensor([r.distance for r in found], dtype=torch.float32)
        return ids, distances

    def get(self, ids: Sequence[int] | Tensor | np.ndarray) -> tuple[Tensor, list[dict[str, Any]]]:
        """The stored embeddings ``(N, dim)`` and metadata of ``ids``, in the order asked; unknown ids are an error."""
        self._check_open()
        id_array = check_ids(ids)
        found: dict[int, tuple[np.ndarray, dict[str, Any]]] = {}
        with self._read() as conn:
            for chunk in _chunks(id_array):
                statement = sa.select(self._table.c.id, self._table.c.embedding, self._table.c.metadata).where(
                    self._table.c.id.in_(chunk.tolist())
                )
                for row in conn.execute(statement):
                    found[int(row.id)] = (self._decode(row.embedding), self._decode_metadata(row.metadata))
        missing = [int(i) for i in id_array if int(i) not in found]
        if missing:
            raise StoreError(
                f"ids not in store {_safe_url(self._engine)!r} (table {self._table_name!r}): {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}"
            )
        if len(id_array) == 0:
            return torch.empty(0, self._dim), []
        embeddings = torch.from_numpy(np.stack([found[int(i)][0] for i in id_array]))
        return embeddings, [dict(found[int(i)][1]) for i in id_array]

    def contains(self, ids: Sequence[int] | Tensor | np.ndarray) -> np.ndarray:
        """Boolean mask of which ``ids`` are stored (used to resume an interrupted ``oml index``)."""
        self._check_open()
        id_array = check_ids(ids)
        present: set[int] = set()
        with self._read() as conn:
            for chunk in _chunks(id_array):
                statement = sa.select(self._table.c.id).where(self._table.c.id.in_(chunk.tolist()))
                present.update(int(i) for i in conn.execute(statement).scalars())
        return np.fromiter((int(i) in present for i in id_array), dtype=bool, count=len(id_array))

    def delete(self, ids: Sequence[int] | Tensor | np.ndarray) -> int:
        """Delete ``ids`` in one transaction; returns how many were stored (unknown ids are ignored)."""
        self._check_open()
        id_array = check_ids(ids)

        def remove() -> int:
            removed = 0
            with self._write() as conn:
                for chunk in _chunks(id_array):
                    removed += conn.execute(sa.delete(self._table).where(self._table.c.id.in_(chunk.tolist()))).rowcount
            return removed

        return self._retrying(remove)

    def count(self) -> int:
        self._check_open()
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self._table)).scalar_one())

    def ids(self) -> Tensor:
        """Every stored id, ascending."""
        self._check_open()
        with self._read() as conn:
            values = conn.execute(sa.select(self._table.c.id).order_by(self._table.c.id)).scalars().all()
        return torch.tensor(values, dtype=torch.int64)

    # -------------------------------------------------------------------------------------------- store info
    @property
    def info(self) -> dict[str, Any]:
        """Free-form facts saved with the store (``oml index`` records the model it used here)."""
        self._check_open()
        table = self._info_table()
        with self._read() as conn:
            row = conn.execute(sa.select(table.c.value).where(table.c.key == "user_info")).scalar_one_or_none()
        return dict(json.loads(row)) if row else {}

    def update_info(self, values: Mapping[str, Any]) -> None:
        """Merge ``values`` (JSON-serialisable) into ``info``."""
        self._check_open()
        table = self._info_table()

        def write() -> None:
            with self._write() as conn:
                row = conn.execute(sa.select(table.c.value).where(table.c.key == "user_info")).scalar_one_or_none()
                merged = {**(json.loads(row) if row else {}), **values}
                conn.execute(sa.delete(table).where(table.c.key == "user_info"))
                conn.execute(sa.insert(table), {"key": "user_info", "value": json.dumps(merged, allow_nan=False)})

        self._retrying(write)

    # -------------------------------------------------------------------------------------------- lifetime
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- helpers
    def _decode(self, value: Any) -> np.ndarray:
        if self._sqlite:
            return np.frombuffer(value, dtype=np.float32).copy()
        return np.asarray(value, dtype=np.float32)

    def _decode_metadata(self, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            return dict(json.loads(value))
        return dict(value)


# ------------------------------------------------------------------------------------------------ module helpers
@contextmanager
def _database_errors(engine: sa.Engine) -> Iterator[None]:
    """A damaged file or a lost server becomes a StoreError naming the store; duplicate ids (IntegrityError) and
    a busy SQLite (OperationalError "locked", retried by the caller) pass through."""
    try:
        yield
    except (sa.exc.IntegrityError, StoreError):
        raise
    except sa.exc.OperationalError as exc:
        if "locked" in str(exc.orig) or "busy" in str(exc.orig):
            raise
        raise StoreError(_database_problem(engine, exc)) from None
    except (sa.exc.DatabaseError, sa.exc.InterfaceError) as exc:
        raise StoreError(_database_problem(engine, exc)) from None


def _database_problem(engine: sa.Engine, exc: BaseException) -> str:
    url = _safe_url(engine)
    detail = _first_line(exc)
    if engine.dialect.name == "sqlite":
        return (
            f"store {url!r}: the file {engine.url.database!r} cannot be used as an SQLite store ({detail}): it is not an "
            f"SQLite database, or it is truncated or damaged. Restore it from a backup, or index the images again into "
            f"a new file"
        )
    if "connect" in detail.lower() or "refused" in detail.lower() or "could not" in detail.lower():
        return (
            f"store {url!r}: cannot reach the PostgreSQL server ({detail}). Check that it runs and listens at "
            f"{engine.url.host or 'the local socket'}:{engine.url.port or 5432} (scripts/postgres.sh starts a local one), "
            f"and the URL's user, password and database"
        )
    return f"store {url!r}: the database failed ({detail})"


def _missing_store_message(url: str, table: str) -> str:
    return (
        f"there is no store at {url!r} (table {table!r}); nothing was created. Build one first with "
        f"`oml index --store {url} ...`, or check the URL (and --store-option table=...)"
    )


def _create_engine(url: str, timeout_s: float, *, create: bool = True) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"cannot parse store URL {url!r}: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 (binary), a dependency of this plugin
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            if not create and not Path(database).expanduser().is_file():
                raise StoreError(_missing_store_message(url, "embeddings"))
            parent = Path(database).expanduser().resolve().parent
            if not parent.is_dir():
                raise StoreError(f"store URL {url!r}: the folder {str(parent)!r} does not exist")
        engine = sa.create_engine(parsed, connect_args={"timeout": timeout_s, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(f"store URL {url!r} needs the driver {exc.name!r}: pip install 'oml-store-sql[postgres]'") from None


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take over BEGIN from the driver (it would defer it to the first write); see SqlStore._write
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # in WAL mode NORMAL still survives a killed process; only a power cut can lose the last commits
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("oml_sqlite_begin", "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def _sqlite_filter_sql(conditions: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``AND``-ed conditions on the JSON metadata; keys become bound JSON paths and values bound parameters, and
    ``json_type`` keeps ``1`` from matching ``true``."""
    sql: list[str] = []
    params: list[Any] = []
    for key, value in conditions.items():
        path = '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if value is None:
            sql.append(" AND json_type(metadata, ?) = 'null'")
            params.append(path)
        elif isinstance(value, bool):
            sql.append(" AND json_type(metadata, ?) = ?")
            params.extend([path, "true" if value else "false"])
        elif isinstance(value, (int, float)):
            sql.append(" AND json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?")
            params.extend([path, path, value])
        else:
            sql.append(" AND json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?")
            params.extend([path, path, value])
    return "".join(sql), params


def _chunks(ids: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(ids), _ID_CHUNK):
        yield ids[start : start + _ID_CHUNK]


def _safe_url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
