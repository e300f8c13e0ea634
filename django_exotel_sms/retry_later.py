"""A view decorator: a transient database error answers 503 with ``Retry-After``, not 500.

Exotel retries a callback that failed, so a report that met a locked SQLite file or a lost
connection is not lost if we say "try again" -- a 500 says our code is broken, and a proxy
or monitoring would treat it so. Any other error (a bug, a missing table) still raises.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.db import Error, connections
from django.http import HttpRequest, HttpResponse

from .db.transient import is_transient

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5

View = Callable[..., HttpResponse]


def retry_later_when_db_busy(view: View) -> View:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Error as exc:  # DatabaseError, and InterfaceError (lost connections)
            if not is_transient(exc):
                raise
            logger.warning("%s: transient database error, answered 503: %s", view.__name__, exc)
            # With ATOMIC_REQUESTS the request's transaction (opened around this view) is
            # still open: it must roll back, not commit half a report.
            for conn in connections.all(initialized_only=True):
                if conn.settings_dict.get("ATOMIC_REQUESTS") and conn.in_atomic_block:
                    conn.set_rollback(True)
            response = HttpResponse(
                "Database busy; please retry.", status=503, content_type="text/plain"
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response

    return wrapper
