"""One request rate per Exotel account, shared by every worker through Redis.

Built on the maintained ``limits`` library (moving window). With
``RATE_LIMIT_STORAGE`` unset the window lives in process memory, which is right for
one process (tests, the demo) but not for several workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from .conf import get_account, get_settings

_lock = threading.Lock()
_limiters: dict[str, MovingWindowRateLimiter] = {}


def _limiter() -> MovingWindowRateLimiter:
    uri = get_settings().rate_limit_storage or "memory://"
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


def acquire(account: str = "default", kind: str = "post", max_wait: float = 60.0) -> bool:
    """Wait for a request slot; False if none came within ``max_wait`` seconds."""
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
