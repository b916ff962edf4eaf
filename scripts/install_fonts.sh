#!/usr/bin/env bash
# Installs the Debian font packages that `oml datasets fonts` renders.
#   bash scripts/install_fonts.sh          the handful the tests need (a few MB)
#   bash scripts/install_fonts.sh --full   the full list behind the benchmark figures (docs/benchmarks.md)
# Packages that this Debian release does not have are reported and skipped: one missing name must not stop the
# other 150 from being installed (apt-get refuses the whole command otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
FULL_LIST=plugins/oml-datasets/oml_datasets/fonts/debian-packages.txt
TEST_PACKAGES=(fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-urw-base35)

case "${1:-}" in
  --full) mapfile -t wanted < <(grep -v '^\s*\(#\|$\)' "$FULL_LIST") ;;
  "") wanted=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: bash scripts/install_fonts.sh [--full]" >&2; exit 2 ;;
esac

SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
APT=("${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=900)

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} == 0 ]]; then
  echo "all ${#wanted[@]} font packages are installed"
  exit 0
fi
"${APT[@]}" update -qq
# one apt-cache call for all packages: "<name>:" lines followed by their "Candidate:" line
mapfile -t available < <(apt-cache policy "${missing[@]}" 2>/dev/null |
  awk '/^[^ ].*:$/ {pkg = substr($0, 1, length($0) - 1)} /Candidate:/ && $2 != "(none)" {print pkg}')
for pkg in "${missing[@]}"; do
  [[ " ${available[*]} " == *" $pkg "* ]] || echo "skipped: $pkg has no installation candidate in this Debian release" >&2
done
if [[ ${#available[@]} -gt 0 ]]; then
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${available[@]}"
fi
fc-cache -f >/dev/null 2>&1 || true
echo "installed ${#available[@]} font packages (${#wanted[@]} wanted)"
