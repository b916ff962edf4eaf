"""Registers the ``sql`` store (SQLite / PostgreSQL + pgvector)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_core.registry import Registry
    from oml_store_sql.store import SqlStore


def _create(**fields: Any) -> SqlStore:
    from oml_store_sql.store import SqlStore

    url = fields.pop("url")
    return SqlStore(url, **fields)


@hookimpl
def oml_register_stores(registry: Registry[Any]) -> None:
    from oml_store_sql.store import SqlStoreConfig

    registry.add(
        "sql",
        config=SqlStoreConfig,
        factory=_create,
        summary="embeddings in SQLite (exact search, a file path is enough) or PostgreSQL + pgvector (HNSW) via SQLAlchemy",
        # {tmp} is replaced by a fresh folder in the contract checks (oml_core.testing.contracts.stores)
        example={"url": "sqlite:///{tmp}/store.db", "dim": 8, "metric": "euclidean"},
    )
