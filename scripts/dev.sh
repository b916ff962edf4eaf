#!/usr/bin/env bash
# One entry point for developers and CI:
#   bash scripts/dev.sh demo   set up (if needed) and run the main job on the bundled mock data
#   bash scripts/dev.sh test   set up (if needed) and run every test, ruff, mypy and the docs build
#   bash scripts/dev.sh setup  only set up .venv (the core, every plugin and contrib package, editable)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${OML_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

setup() {
  bash "$ROOT/scripts/system-packages.sh"  # Debian packages the tests need (headless Chromium)
  # the fonts the oml-datasets tests render (Debian packages; needs root or sudo)
  bash scripts/install_fonts.sh || echo "warning: could not install the test fonts; run: sudo bash scripts/install_fonts.sh" >&2
  local stamp="$VENV/.oml-setup-stamp"
  # re-install only when a package definition or the requirements changed
  local want
  want=$(cat pyproject.toml requirements-dev.txt constraints.txt plugins/*/pyproject.toml contrib/*/pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/oml" ]]; then
    return 0
  fi
  echo "== setting up $VENV"
  [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
  local pip=("$VENV/bin/python" -m pip install -q -c "$ROOT/constraints.txt")
  "${pip[@]}" torch==2.13.0
  local editables=(-e "$ROOT")
  for dir in plugins/*/ contrib/*/; do
    [[ -f "$dir/pyproject.toml" && ! -f "$dir/.not-installed" ]] && editables+=(-e "$ROOT/$dir")
  done
  "${pip[@]}" "${editables[@]}" -r requirements-dev.txt
  echo "$want" > "$stamp"
}

case "${1:-}" in
  setup) setup ;;
  demo)
    setup
    exec "$VENV/bin/python" scripts/demo.py "${@:2}"
    ;;
  test)
    setup
    export PATH="$VENV/bin:$PATH"
    echo "== ruff"; ruff check .
    echo "== mypy"; mypy oml_core
    echo "== pytest"; exec python -m pytest -q -n 2 "${@:2}"
    ;;
  *) echo "usage: bash scripts/dev.sh {demo|test|setup}" >&2; exit 2 ;;
esac
