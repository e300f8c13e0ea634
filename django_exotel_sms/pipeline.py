"""Overlap one chunk's HTTP request with the next chunk's claim, inside one worker process.

The request (no database work: the rows, the URL and the rate-limit slot are ready) runs
on a helper thread while the calling thread claims the next chunk; then the caller
records the answer. Bounded: one request and one claim ahead, never more. The claim keeps
its own connection (the calling thread's), the request its HTTP session.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _reset_after_fork() -> None:
    # A pool inherited from a parent (Celery prefork) has no threads in the child.
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_reset_after_fork)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exotel-sms-request")
        return _executor


class Side:
    """Work to run once while a request is in flight (the next claim); its result or error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._work: Callable[[], Any] | None = work
        self.result: Any = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._work is None

    def run(self) -> None:
        """Run it now if it has not run yet; an error is kept for the caller to raise later
        (after the answer in flight is recorded)."""
        work, self._work = self._work, None
        if work is None:
            return
        try:
            self.result = work()
        except Exception as exc:
            self.error = exc


def overlap(request: Callable[[], T], side: Side | None, *, using: str) -> T:
    """``request()``; if ``side`` has not run yet, run it meanwhile on this thread.

    Only in autocommit, as a worker runs: inside a caller's transaction the side work
    runs after the request (the other thread would not see that transaction's rows).
    """
    if side is None or side.done or connections[using].in_atomic_block:
        return request()
    future: Future[T] = _pool().submit(request)
    side.run()
    return future.result()
