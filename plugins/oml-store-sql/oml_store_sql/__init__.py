"""OML embedding store on SQL: SQLite (embedded, exact search) or PostgreSQL with pgvector (HNSW).

Example:
    >>> from oml_store_sql import SqlStore
    >>> store = SqlStore("sqlite:///gallery.db", dim=384, metric="cosine")  # doctest: +SKIP
"""

from oml_core.lazy import lazy_exports

# PEP 562: importing the package (the host does, for every command) does not import torch
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SqlStore": "oml_store_sql.store",
        "SqlStoreConfig": "oml_store_sql.store",
    },
)

__all__ = ["SqlStore", "SqlStoreConfig"]
