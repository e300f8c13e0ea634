#!/usr/bin/env bash
# What the browser tests (tests/browser/) need: Debian's Chromium (plus a Devanagari font, so
# Hindi text in the screenshots is legible) and Playwright for Python. Playwright drives
# /usr/bin/chromium; `playwright install` (a browser download) is never run.
# Usage: scripts/browser-setup.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"
PACKAGES=(chromium fonts-lohit-deva)
if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=300
    apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}" >/dev/null
  elif [ ! -x /usr/bin/chromium ]; then
    echo "the browser tests need Debian's Chromium: apt-get install ${PACKAGES[*]}" >&2
    exit 1
  fi
fi
"$PY" -m pip install --quiet 'playwright>=1.40'
