"""Transient database errors: the ones a retry a moment later may not meet again.

A lock that was not granted in time ("database is locked" on SQLite, a deadlock or lock
timeout on PostgreSQL and MySQL) or a lost connection is transient. A missing table, an
unknown column or a constraint violation is not: retrying cannot help, so it must surface.
Drivers disagree on which of these they call ``OperationalError`` (SQLite and MySQL use it
for some SQL mistakes too), so the driver's own code or text decides.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "busy", "disk i/o error")
# SQLSTATE classes: 08 connection, 40 rollback (serialisation, deadlock), 53 resources
# (too many connections), 57 operator intervention (shutdown, statement timeout); 55P03 lock.
_POSTGRES_TRANSIENT = ("08", "40", "53", "57", "55P03")
# Lock wait timeout, deadlock, too many connections, server gone/lost/shutting down.
_MYSQL_TRANSIENT = {1205, 1213, 1040, 1053, 2002, 2003, 2006, 2013, 2055, 4031}


def is_transient(exc: BaseException) -> bool:
    """True for a database error that a later retry may not meet (lock, busy, connection)."""
    if isinstance(exc, InterfaceError):  # the connection went away
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__  # Django re-raises the driver's error "from" it
    module = type(cause).__module__ if cause is not None else ""
    if module.startswith("sqlite3"):
        text = str(cause).lower()
        return any(word in text for word in _SQLITE_TRANSIENT)
    if module.startswith("psycopg"):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        return code is None or str(code).startswith(_POSTGRES_TRANSIENT)  # None: no server
    if module.startswith("MySQLdb"):
        args: tuple[object, ...] = getattr(cause, "args", ())
        return bool(args) and args[0] in _MYSQL_TRANSIENT
    return True  # other drivers: the DB-API's OperationalError is operational trouble
