"""SQLite for several writing processes on Django < 5.1 (later versions have these options).

The demo's web server and Celery worker write at once. A deferred transaction that later
needs the write lock fails at once with "database is locked" instead of waiting, so every
transaction takes the lock when it begins (what ``transaction_mode="IMMEDIATE"`` does on
Django 5.1+), and WAL lets readers go on meanwhile.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _start_transaction_under_autocommit(self) -> None:
        self.cursor().execute("BEGIN IMMEDIATE")
