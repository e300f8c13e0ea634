#!/usr/bin/env bash
# Runs the demo on a fresh machine: creates .venv, installs the package, starts Redis if it can
# (the demo falls back to an embedded Celery worker without it), then runs the example project's
# exotel_demo command (local Exotel stand-in, worker, web server on 127.0.0.1:8000, real sends).
# Extra arguments go to the command, e.g. scripts/demo.sh --exit-when-done
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
if ! bash scripts/services.sh >/dev/null 2>&1; then
  echo "Note: not every local service is up; without Redis the demo uses an embedded worker." >&2
fi
exec .venv/bin/python example_project/manage.py exotel_demo "$@"
