"""Registers the ``faiss`` store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oml_core import hookimpl

if TYPE_CHECKING:
    from oml_core.registry import Registry


@hookimpl
def oml_register_stores(registry: Registry[Any]) -> None:
    from oml_store_faiss.quantized import QuantizedFaissStoreConfig, create_faiss_store

    registry.add(
        "faiss",
        config=QuantizedFaissStoreConfig,
        factory=create_faiss_store,
        summary="embeddings in a FAISS index (flat, IVF-Flat, IVF-PQ, HNSW; int8 or binary codes) saved atomically to a folder",
        # {tmp} is replaced by a fresh folder in the contract checks (oml_core.testing.contracts.stores)
        example={"path": "{tmp}/store.faiss", "dim": 8, "metric": "euclidean", "index": "flat"},
    )
