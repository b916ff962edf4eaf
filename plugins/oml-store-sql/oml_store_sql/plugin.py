"""Registers the ``sql`` store (SQLite / PostgreSQL + pgvector)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_core.registry import Registry


@hookimpl
def oml_register_stores(registry: Registry[Any]) -> None:
    from oml_store_sql.quantized import QuantizedSqlStoreConfig, create_sql_store

    registry.add(
        "sql",
        config=QuantizedSqlStoreConfig,
        factory=create_sql_store,
        summary="embeddings in SQLite (exact search, a file path is enough) or PostgreSQL + pgvector (HNSW) via SQLAlchemy; "
        "optional int8 or binary code indexes",
        # {tmp} is replaced by a fresh folder in the contract checks (oml_core.testing.contracts.stores)
        example={"url": "sqlite:///{tmp}/store.db", "dim": 8, "metric": "euclidean"},
    )
