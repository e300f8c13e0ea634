"""SQLite whose transactions take the write lock when they begin, on every Django version.

A web server and a Celery worker writing one SQLite file at once: a transaction that
began as a reader and later needs the write lock cannot wait for it (SQLite would
deadlock), so it fails at once with "database is locked". ``BEGIN IMMEDIATE`` takes the
lock up front, where the connection's ``timeout`` lets it wait its turn. Django 5.1+ does
the same with ``"OPTIONS": {"transaction_mode": "IMMEDIATE"}``; this backend brings it to
Django 4.2 and waits up to ``DEFAULT_TIMEOUT`` seconds unless ``OPTIONS["timeout"]`` says.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base

DEFAULT_TIMEOUT = 20.0


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        params.setdefault("timeout", DEFAULT_TIMEOUT)
        return params

    def _start_transaction_under_autocommit(self) -> None:
        # Django 5.1+ reads OPTIONS["transaction_mode"] into this attribute: an explicit
        # mode (e.g. EXCLUSIVE) wins.
        mode = getattr(self, "transaction_mode", None) or "IMMEDIATE"
        self.cursor().execute(f"BEGIN {mode}")
