"""Which messages belong to "this run" of the demo, so the dashboard does not add up runs.

``exotel_demo`` marks its start (the newest message id before it sends); the dashboard it
serves from the same process then counts only later messages. ``?since=<id>`` chooses a run
explicitly, ``?since=0`` shows every message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone


@dataclass(frozen=True)
class Run:
    after_pk: int  # the run's messages have a larger id
    started_at: datetime | None = None


_lock = threading.Lock()
_current: Run | None = None


def start(after_pk: int) -> Run:
    """Mark a demo run's start: messages saved from now on belong to it."""
    global _current
    with _lock:
        _current = Run(after_pk=after_pk, started_at=timezone.now())
        return _current


def current() -> Run | None:
    with _lock:
        return _current


def from_query(value: str | None) -> Run | None:
    """The run named by ``?since=<id>``; None when absent or not a plain number."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return Run(after_pk=int(value))
