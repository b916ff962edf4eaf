"""A local PostgreSQL server with pgvector, for tests, benchmarks and trying the ``sql`` store on PostgreSQL.

It uses the ``pgserver`` wheel (``pip install oml-store-sql[local-postgres]``), which bundles PostgreSQL 16 and
the pgvector extension, so nothing has to be installed system-wide. The server listens on a Unix socket only
(no TCP port), inside the data folder.

PostgreSQL refuses to run as root. When called as root, pgserver runs the server as a dedicated unprivileged
system user ``pgserver`` (created with ``useradd`` if missing), makes the data folder owned by it and adds
read/traverse permission for others on the folder's parents and on the bundled binaries.

Command line (``scripts/postgres.sh`` wraps it)::

    python -m oml_store_sql.local_postgres start .pgdata   # start (idempotent) and print the store URL
    python -m oml_store_sql.local_postgres url .pgdata     # print the URL of the running server
    python -m oml_store_sql.local_postgres stop .pgdata
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from oml_core.errors import OMLError as StoreError  # not oml_core.stores: this module must not import torch

__all__ = ["running_url", "start_local_postgres", "stop_local_postgres"]

_PIDS_FILE = ".handle_pids.json"  # pgserver's list of processes that hold the server (it stops with the last)


def _pgserver() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here
            import pgserver
    except ImportError:
        raise StoreError(
            "a local PostgreSQL needs the pgserver package: pip install 'oml-store-sql[local-postgres]' "
            "(or run bash scripts/postgres.sh start, which installs it)"
        ) from None
    return pgserver


def _prune_dead_holders(pgdata: Path) -> None:
    """Forget holders that died without stopping (e.g. a killed test run), so that the last live one stops it."""
    path = pgdata / _PIDS_FILE
    if not path.exists():
        return
    try:
        import psutil

        pids = [p for p in json.loads(path.read_text()) if psutil.pid_exists(p)]
        path.write_text(json.dumps(pids))
    except (OSError, ValueError):
        path.unlink(missing_ok=True)


def start_local_postgres(pgdata: str | Path, *, stop_at_exit: bool = False) -> str:
    """Start (or reuse) the server whose data live in ``pgdata`` (created if missing); return a store URL with
    the ``vector`` extension enabled in its database.

    ``stop_at_exit=True``: stop the server when the last process that started it this way exits (test sessions,
    including pytest-xdist workers); ``False``: leave it running (``stop_local_postgres`` stops it).

    Example:
        >>> url = start_local_postgres(".pgdata")  # doctest: +SKIP
        >>> url
        'postgresql://postgres@/postgres?host=/abs/.pgdata'
    """
    pgserver = _pgserver()
    folder = Path(pgdata).expanduser().resolve()
    # created here, race-free: pgserver's own mkdir(exist_ok=False) runs outside its lock, and two test workers
    # starting at once would collide there
    folder.mkdir(parents=True, exist_ok=True)
    _prune_dead_holders(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(folder, cleanup_mode="stop" if stop_at_exit else None)
    if not stop_at_exit:
        # a CLI process that only starts the server must not count as a holder after it exits
        _drop_holder(folder, os.getpid())
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")
    return _store_url(server.get_uri())


def _drop_holder(folder: Path, pid: int) -> None:
    path = folder / _PIDS_FILE
    try:
        pids = [p for p in json.loads(path.read_text()) if p != pid]
        path.write_text(json.dumps(pids))
    except (OSError, ValueError):
        pass


def _store_url(uri: str) -> str:
    # pgserver writes "postgresql://postgres:@/postgres?host=..."; the empty password is noise
    return uri.replace("postgres:@", "postgres@", 1)


def running_url(pgdata: str | Path) -> str | None:
    """The URL of the server running on ``pgdata``, or None when none is."""
    folder = Path(pgdata).expanduser().resolve()
    pid_file = folder / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    try:
        import psutil

        if len(lines) < 8 or not psutil.pid_exists(int(lines[0])) or lines[7].strip() != "ready":
            return None
    except (ImportError, ValueError):
        return None
    socket_dir, port = lines[4].strip(), lines[3].strip()
    suffix = "" if port in ("", "5432") else f"&port={port}"
    return f"postgresql://postgres@/postgres?host={socket_dir}{suffix}"


def stop_local_postgres(pgdata: str | Path) -> bool:
    """Stop the server running on ``pgdata``; returns False when none was running."""
    pgserver = _pgserver()
    folder = Path(pgdata).expanduser().resolve()
    if running_url(folder) is None:
        return False
    pg_ctl = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    subprocess.run([str(pg_ctl), "-D", str(folder), "-m", "fast", "-w", "stop"], check=True, capture_output=True, user=user)
    (folder / _PIDS_FILE).unlink(missing_ok=True)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("start", "stop", "url", "status"):
        print("usage: python -m oml_store_sql.local_postgres {start|stop|url|status} PGDATA", file=sys.stderr)
        return 2
    command, pgdata = args
    try:
        if command == "start":
            print(start_local_postgres(pgdata))
        elif command == "stop":
            print("stopped" if stop_local_postgres(pgdata) else "not running")
        else:
            url = running_url(pgdata)
            if url is None:
                print("not running", file=sys.stderr)
                return 1
            print(url if command == "url" else f"running: {url}")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
