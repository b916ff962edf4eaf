#!/usr/bin/env bash
# Debian packages the test suite needs, installed when missing (idempotent, quick when all are there; run by
# `scripts/dev.sh setup`):
#   chromium, chromium-driver: headless Chromium for the oml-serve page test (Selenium) and the `oml report` page test
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
    echo "scripts/system-packages.sh: need root (or sudo) to install ${need[*]}" >&2
    exit 1
  fi
  SUDO=$([[ $(id -u) -eq 0 ]] && echo "" || echo sudo)
  echo "== installing Debian packages: ${need[*]}"
  $SUDO apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -qq "${need[@]}"
fi
