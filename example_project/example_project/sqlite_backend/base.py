"""SQLite for several writing processes on Django < 5.1 (later versions have these options).

The demo's web server and Celery worker write at once. The package's backend begins every
transaction with BEGIN IMMEDIATE (what ``transaction_mode="IMMEDIATE"`` does on Django
5.1+), so a writer waits for the lock instead of failing with "database is locked"; WAL,
added here, lets readers go on meanwhile.
"""

from __future__ import annotations

from typing import Any

from django_exotel_sms.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
