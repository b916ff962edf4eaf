#!/usr/bin/env bash
# A local PostgreSQL 16 + pgvector for the sql store's tests and benchmarks, from the pgserver wheel on PyPI
# (it bundles the server and the extension; Debian's PostgreSQL has no pgvector package).
#
#   bash scripts/postgres.sh start    # install pgserver & drivers if missing, start (idempotent), print the store URL
#   bash scripts/postgres.sh url      # print the URL of the running server (exit 1 if none)
#   bash scripts/postgres.sh stop
#
# Data live in $OML_PGDATA (default: .pgdata/ at the repository root); the server listens on a Unix socket in that
# folder only. PostgreSQL refuses to run as root: as root, pgserver runs it as the unprivileged system user
# "pgserver" (created if missing) that owns the data folder. The test suite starts the same server itself
# (plugins/oml-store-sql/tests/conftest.py) and stops it when its last worker exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${OML_VENV:-$ROOT/.venv}
PGDATA=${OML_PGDATA:-$ROOT/.pgdata}
PY="$VENV/bin/python"

command=${1:-}
case "$command" in
  start|stop|url|status) ;;
  *) echo "usage: bash scripts/postgres.sh {start|stop|url|status}" >&2; exit 2 ;;
esac

if [[ "$command" == "start" ]] && ! "$PY" -c "import pgserver, psycopg, pgvector, oml_store_sql" 2>/dev/null; then
  echo "== installing pgserver, psycopg and pgvector into $VENV" >&2
  "$PY" -m pip install -q -c "$ROOT/constraints.txt" "pgserver>=0.1.4" "psycopg[binary]>=3.1" "pgvector>=0.2.5" >&2
  "$PY" -c "import oml_store_sql" 2>/dev/null || "$PY" -m pip install -q -c "$ROOT/constraints.txt" -e "$ROOT/plugins/oml-store-sql" >&2
fi
exec "$PY" -W ignore -m oml_store_sql.local_postgres "$command" "$PGDATA"
