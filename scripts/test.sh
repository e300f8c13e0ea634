#!/usr/bin/env bash
# The whole test suite, on a fresh machine: creates .venv, installs the package with its dev
# extras and the browser tests' Chromium, starts PostgreSQL/Redis/RabbitMQ/MariaDB if they are
# down, checks lint, format, types and migrations, then runs pytest on PostgreSQL (everything:
# real Celery workers, the browser) and on SQLite (the embedded default; worker tests need a
# shared server database), then the compatibility matrix's CI subset with nox.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
bash scripts/browser-setup.sh .venv/bin/python
bash scripts/services.sh
mkdir -p artifacts

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy django_exotel_sms
.venv/bin/sphinx-build -W -q -b html docs docs/_build/html
# python -m (not django-admin): the checkout must be importable for tests.settings.
DJANGO_SETTINGS_MODULE=tests.settings .venv/bin/python -m django makemigrations --check --dry-run \
  django_exotel_sms

echo "== pytest on PostgreSQL =="
TEST_DB=postgres .venv/bin/python -m pytest "$@"
echo "== pytest on SQLite (${SECONDS}s so far) =="
TEST_DB=sqlite .venv/bin/python -m pytest -m "not celery_worker and not browser and not packaging" "$@"
# The compatibility matrix's CI subset (noxfile.py says which sessions and why). SKIP_MATRIX=1
# leaves it out, e.g. when running a few tests by hand.
if [ "${SKIP_MATRIX:-0}" != 1 ]; then
  echo "== nox -t ci: Django 4.2 and 6.x, MariaDB, RabbitMQ (${SECONDS}s so far) =="
  .venv/bin/nox -t ci
fi
echo "== done in ${SECONDS}s =="
