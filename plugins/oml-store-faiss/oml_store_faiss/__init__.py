"""OML embedding store on FAISS (flat, IVF-Flat, IVF-PQ, HNSW), saved atomically to a folder.

Example:
    >>> from oml_store_faiss import FaissStore
    >>> store = FaissStore("gallery.faiss", dim=384, metric="cosine", index="hnsw")  # doctest: +SKIP
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FaissStore": "oml_store_faiss.store",
        "FaissStoreConfig": "oml_store_faiss.store",
    },
)

__all__ = ["FaissStore", "FaissStoreConfig"]
