"""OML embedding store on SQL: SQLite (embedded, exact search) or PostgreSQL with pgvector (HNSW).

Example:
    >>> from oml_store_sql import SqlStore
    >>> store = SqlStore("sqlite:///gallery.db", dim=384, metric="cosine")  # doctest: +SKIP
"""

from oml_store_sql.store import SqlStore, SqlStoreConfig

__all__ = ["SqlStore", "SqlStoreConfig"]
