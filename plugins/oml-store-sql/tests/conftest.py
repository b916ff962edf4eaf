"""Fixtures of the sql store's tests: a real local PostgreSQL with pgvector, started by the project's own helper
(the same one ``scripts/postgres.sh`` runs) and stopped when the last test process exits."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the local PostgreSQL (data in $OML_PGDATA, default .pgdata/ at the repository root)."""
    from oml_store_sql.local_postgres import start_local_postgres

    pgdata = Path(os.environ.get("OML_PGDATA", ROOT / ".pgdata"))
    return start_local_postgres(pgdata, stop_at_exit=True)


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[Callable[[str], str]]:
    """Makes unique table names for one test and drops those tables afterwards (xdist workers share the server)."""
    made: list[str] = []

    def name(prefix: str) -> str:
        table = f"t_{prefix}_{uuid.uuid4().hex[:10]}"
        made.append(table)
        return table

    yield name
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for table in made:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}", "{table}_info" CASCADE'))
    engine.dispose()
