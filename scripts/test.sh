#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: creates .venv, installs the package with its
# dev extras, starts PostgreSQL/Redis/RabbitMQ/MariaDB if they are down, then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
bash scripts/services.sh
# Lint, format and types first: cheap, and they catch what tests miss.
.venv/bin/ruff check django_exotel_sms tests example_project bench
.venv/bin/ruff format --check django_exotel_sms tests example_project bench
.venv/bin/mypy django_exotel_sms
.venv/bin/python -m django makemigrations --check --dry-run --settings=tests.settings django_exotel_sms
.venv/bin/python -m pytest "$@"
