"""Retrying a database write that met a transient error: a lock, a dropped connection.

After Exotel has answered, the answer must reach the database: a "database is locked"
(SQLite) or a restarted server must not leave the rows ``submitting`` for reconciliation
to guess about. Each attempt runs in its own transaction (a savepoint inside an outer
one), so a failed attempt leaves nothing half-written; a single statement may run without
one (``atomic=False``), outside any transaction it is atomic by itself.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connections, transaction

from .db.transient import is_transient

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The classes transient errors come as; ``db.transient.is_transient`` tells which of them
# may pass (a lock, a lost connection) from those the same write would meet again.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
ATTEMPTS = 4
BASE_DELAY = 0.1  # seconds before the first retry, doubling, jittered: about 1 s in all


def retry_write(write: Callable[[], T], *, using: str, what: str, atomic: bool = True) -> T:
    """Run ``write`` (atomically); on a transient error retry it, bounded, with backoff."""
    connection = connections[using]
    attempt = 1
    while True:
        try:
            if not atomic:
                return write()
            with transaction.atomic(using=using):
                return write()
        except TRANSIENT_ERRORS as exc:
            # Without a savepoint of its own, a write failed inside a transaction broke it.
            if (
                not is_transient(exc)
                or attempt >= ATTEMPTS
                or (not atomic and connection.in_atomic_block)
            ):
                raise
            logger.warning(
                "%s: transient database error (%s); retry %d of %d",
                what,
                exc,
                attempt,
                ATTEMPTS - 1,
            )
            if not connection.in_atomic_block:
                # A dropped connection is replaced on the next query.
                connection.close_if_unusable_or_obsolete()
            time.sleep(BASE_DELAY * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
            attempt += 1
