"""Registers the ``faiss`` store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_core.registry import Registry
    from oml_store_faiss.store import FaissStore


def _create(**fields: Any) -> FaissStore:
    from oml_store_faiss.store import FaissStore

    path = fields.pop("path")
    return FaissStore(path, **fields)


@hookimpl
def oml_register_stores(registry: Registry[Any]) -> None:
    from oml_store_faiss.store import FaissStoreConfig

    registry.add(
        "faiss",
        config=FaissStoreConfig,
        factory=_create,
        summary="embeddings in a FAISS index (flat, IVF-Flat, IVF-PQ, HNSW) saved atomically to a folder",
        # {tmp} is replaced by a fresh folder in the contract checks (oml_core.testing.contracts.stores)
        example={"path": "{tmp}/store.faiss", "dim": 8, "metric": "euclidean", "index": "flat"},
    )
