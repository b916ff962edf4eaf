"""OML embedding store on FAISS (flat, IVF-Flat, IVF-PQ, HNSW), saved atomically to a folder.

Example:
    >>> from oml_store_faiss import FaissStore
    >>> store = FaissStore("gallery.faiss", dim=384, metric="cosine", index="hnsw")  # doctest: +SKIP
"""

from oml_store_faiss.store import FaissStore, FaissStoreConfig

__all__ = ["FaissStore", "FaissStoreConfig"]
