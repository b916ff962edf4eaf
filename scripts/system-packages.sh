#!/usr/bin/env bash
# Debian packages the test suite needs, installed when missing (as root, or through sudo):
#   chromium   headless browser that loads `oml report` pages (tests/report)
# Called by `bash scripts/dev.sh setup`; safe to run again.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  echo "== installing Debian packages: ${missing[*]}"
  $sudo apt-get -o DPkg::Lock::Timeout=900 update -q
  $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "${missing[@]}"
fi
