#!/usr/bin/env bash
# The whole test suite, on a fresh machine: creates .venv, installs the package with its dev
# extras, starts PostgreSQL/Redis/RabbitMQ/MariaDB if they are down, checks lint, format,
# types and migrations, then runs pytest on PostgreSQL (everything, real Celery workers
# included) and on SQLite (the embedded default; worker tests need a shared server database).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
bash scripts/services.sh
mkdir -p artifacts

.venv/bin/ruff check django_exotel_sms tests example_project bench
.venv/bin/ruff format --check django_exotel_sms tests example_project bench
.venv/bin/mypy django_exotel_sms
.venv/bin/sphinx-build -W -q -b html docs docs/_build/html
DJANGO_SETTINGS_MODULE=tests.settings .venv/bin/django-admin makemigrations --check --dry-run \
  django_exotel_sms

echo "== pytest on PostgreSQL =="
TEST_DB=postgres .venv/bin/python -m pytest "$@"
echo "== pytest on SQLite =="
TEST_DB=sqlite .venv/bin/python -m pytest -m "not celery_worker and not browser and not packaging" "$@"
