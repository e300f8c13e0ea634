"""System checks on what surrounds the app: the database it writes and the rate limit's store.

Both are fine for one process and break quietly with several -- a web server and a worker
writing one SQLite file get "database is locked"; workers each counting in their own
memory send faster than the account's limit -- so ``manage.py check`` says so up front.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections, router
from django.db.backends.sqlite3.creation import DatabaseCreation

from . import conf, ratelimit

_ID = "django_exotel_sms"
PACKAGE_SQLITE = "django_exotel_sms.db.backends.sqlite3"
_LOCKING_MODES = ("IMMEDIATE", "EXCLUSIVE")
HAS_TRANSACTION_MODE = django.VERSION >= (5, 1)


@register(Tags.compatibility)
def check_sqlite_transaction_mode(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from .models import SmsMessage

    alias = router.db_for_write(SmsMessage)
    connection = connections[alias]
    if connection.vendor != "sqlite":
        return []
    from .db.backends.sqlite3.base import DatabaseWrapper

    # A subclass of the package's backend (e.g. one adding pragmas) locks up front too.
    locks = isinstance(connection, DatabaseWrapper)
    return sqlite_messages(alias, connection.settings_dict, package_backend=locks)


def sqlite_messages(
    alias: str,
    settings_dict: dict[str, Any],
    *,
    has_transaction_mode: bool = HAS_TRANSACTION_MODE,
    package_backend: bool = False,
) -> list[CheckMessage]:
    """What is wrong with this SQLite database for a web server and a worker writing it."""
    if package_backend or settings_dict["ENGINE"] == PACKAGE_SQLITE:
        return []
    if DatabaseCreation.is_in_memory_db(settings_dict["NAME"]):
        return []  # one process only: nobody to share the write lock with
    mode = str((settings_dict.get("OPTIONS") or {}).get("transaction_mode") or "").upper()
    where = f"DATABASES[{alias!r}]"
    if mode and not has_transaction_mode:
        return [
            Error(
                f"{where}['OPTIONS']['transaction_mode'] needs Django 5.1 or later.",
                hint=f"Remove it and set {where}['ENGINE'] = {PACKAGE_SQLITE!r}, which begins "
                "every transaction with BEGIN IMMEDIATE on any Django version.",
                id=f"{_ID}.E035",
            )
        ]
    if mode in _LOCKING_MODES:
        return []
    if has_transaction_mode:
        hint = (
            f'Add "OPTIONS": {{"transaction_mode": "IMMEDIATE", "timeout": 20}} to {where} '
            f"(or use ENGINE {PACKAGE_SQLITE!r})."
        )
    else:
        hint = (
            f"Django < 5.1 has no transaction_mode: set {where}['ENGINE'] = "
            f"{PACKAGE_SQLITE!r}, which begins every transaction with BEGIN IMMEDIATE."
        )
    return [
        Warning(
            f"{where} is SQLite with deferred transactions: when a web server and a worker "
            "write it at once, status callbacks and sends fail with 'database is locked'.",
            hint=hint,
            id=f"{_ID}.W035",
        )
    ]


@register(Tags.compatibility)
def check_rate_limit_storage(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, conf.SETTINGS_NAME, None)
    if raw is not None and not isinstance(raw, dict):
        return []  # E002 says so; the rest of the settings cannot be read
    configured = (raw or {}).get("RATE_LIMIT_STORAGE")
    storage = ratelimit.resolve_storage(configured if isinstance(configured, str) else None)
    # Eager tasks run in the process that sends them: no workers to share a window with.
    if storage != ratelimit.MEMORY or ratelimit.celery_conf().task_always_eager:
        return []
    return [
        Warning(
            "The Exotel rate limit is counted in each process's memory, while Celery "
            "workers send from several processes: together they can exceed the account's "
            "limit.",
            hint="Set EXOTEL_SMS['RATE_LIMIT_STORAGE'] to a Redis URL (e.g. "
            "'redis://127.0.0.1:6379/1'); with a Redis Celery broker it is used by default.",
            id=f"{_ID}.W036",
        )
    ]
