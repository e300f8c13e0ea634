"""One request rate per Exotel account, shared by every worker through Redis.

Built on the maintained ``limits`` library (moving window). The window lives in
``RATE_LIMIT_STORAGE``; unset, in the Celery broker's Redis when the broker is Redis and
tasks are not eager (the keys start with ``LIMITS:``, apart from Celery's), otherwise in
process memory -- right for one process (tests, eager tasks), not for several workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from .conf import get_account, get_settings

_lock = threading.Lock()
_limiters: dict[str, MovingWindowRateLimiter] = {}


MEMORY = "memory://"
_REDIS_SCHEMES = ("redis", "rediss")


def celery_conf() -> Any:
    from celery import current_app

    return current_app.conf


def broker_redis_url() -> str | None:
    """The Celery broker's URL when it is Redis and tasks really go through it, else None."""
    conf = celery_conf()
    if conf.task_always_eager:
        return None  # no worker processes to share a window with
    url = conf.broker_write_url or conf.broker_url
    if isinstance(url, (list, tuple)):
        url = url[0] if url else None
    if not isinstance(url, str):
        return None
    url = url.split(";")[0].strip()  # a failover list: the first broker
    return url if urlsplit(url).scheme in _REDIS_SCHEMES else None


def resolve_storage(configured: str | None) -> str:
    """Where the window lives: RATE_LIMIT_STORAGE, else the broker's Redis, else memory."""
    return configured or broker_redis_url() or MEMORY


def storage_uri() -> str:
    return resolve_storage(get_settings().rate_limit_storage)


def _limiter() -> MovingWindowRateLimiter:
    uri = storage_uri()
    with _lock:
        limiter = _limiters.get(uri)
        if limiter is None:
            storage = storage_from_string(uri)
            assert isinstance(storage, Storage)  # a sync storage: we never pass async+ URIs
            limiter = MovingWindowRateLimiter(storage)
            _limiters[uri] = limiter
        return limiter


def _item(account: str, kind: str) -> RateLimitItem:
    acct = get_account(account)
    return parse(acct.get_rate_limit if kind == "get" else acct.rate_limit)


def acquire(account: str = "default", kind: str = "post", max_wait: float | None = None) -> bool:
    """Wait for a request slot; False if none came within ``max_wait`` seconds.

    ``max_wait`` defaults to ``RATE_LIMIT_MAX_WAIT``, which ``CLAIM_TIMEOUT`` must cover.
    """
    if max_wait is None:
        max_wait = get_settings().rate_limit_max_wait
    limiter = _limiter()
    item = _item(account, kind)
    # Keyed by the account sid, not the alias: two aliases of one account share a limit.
    key = get_account(account).account_sid
    deadline = time.monotonic() + max_wait
    while True:
        if limiter.hit(item, "exotel-sms", key, kind):
            return True
        stats = limiter.get_window_stats(item, "exotel-sms", key, kind)
        wait = max(0.01, min(stats.reset_time - time.time(), 1.0))
        if time.monotonic() + wait > deadline:
            return False
        time.sleep(wait)


class RateLimited(Exception):
    """No request slot now; one may free in ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limit reached; a request slot frees in {retry_after:.1f}s")
        self.retry_after = retry_after


def take(account: str = "default", kind: str = "post") -> None:
    """Take a request slot now or raise RateLimited: for callers that must not wait (HTTP)."""
    limiter = _limiter()
    item = _item(account, kind)
    key = get_account(account).account_sid
    if not limiter.hit(item, "exotel-sms", key, kind):
        stats = limiter.get_window_stats(item, "exotel-sms", key, kind)
        raise RateLimited(max(0.0, stats.reset_time - time.time()))


def take_all(
    wanted: Sequence[tuple[RateLimitItem, tuple[str, ...]]],
) -> tuple[int, float] | None:
    """Take one slot of every ``(limit, identifiers)``, never waiting; None when all were taken.

    Otherwise ``(index of the first full limit, seconds until it frees a slot)``. Each limit
    is tested before any is hit, so a refused message uses up none of them.
    """
    limiter = _limiter()
    for index, (item, identifiers) in enumerate(wanted):
        if not limiter.test(item, "exotel-sms", *identifiers):
            return index, _reset_in(limiter, item, identifiers)
    for index, (item, identifiers) in enumerate(wanted):
        if not limiter.hit(item, "exotel-sms", *identifiers):  # lost a race for the last slot
            return index, _reset_in(limiter, item, identifiers)
    return None


def _reset_in(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, identifiers: tuple[str, ...]
) -> float:
    stats = limiter.get_window_stats(item, "exotel-sms", *identifiers)
    return max(1.0, stats.reset_time - time.time())


def reset() -> None:
    with _lock:
        for limiter in _limiters.values():
            limiter.storage.reset()
        _limiters.clear()
