"""Small helpers shared by the sending and worker tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

TEST_DB = os.environ.get("TEST_DB", "sqlite")
ON_POSTGRES = TEST_DB == "postgres"
needs_postgres = pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DB=postgres")
# Row locks with SKIP LOCKED: PostgreSQL, and MariaDB 10.6+ (tests/test_databases.py checks it).
needs_row_locks = pytest.mark.skipif(
    TEST_DB not in ("postgres", "mysql"), reason="needs TEST_DB=postgres or TEST_DB=mysql"
)


REDIS_BROKER = "redis://127.0.0.1:6379/15"  # CELERY_BROKER_URL overrides it
RABBITMQ_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
# The broker real-worker tests run on (worker subprocesses and this process alike).
BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_BROKER


def use_broker(app: Any, url: str) -> None:
    """Point this process's Celery app at ``url``.

    The app keeps its connection and producer pools once made; they are kombu's pools per
    broker URL (left open: others may hold them), so forgetting them is enough to switch.
    The read and write URLs are set too: Celery prefers CELERY_BROKER_URL to ``broker_url``.
    """
    app.conf.broker_url = app.conf.broker_read_url = app.conf.broker_write_url = url
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


def purge_broker(url: str) -> None:
    """Drop every task left on the broker, so none from an earlier test reaches a worker."""
    if url.startswith("redis"):
        redis.Redis.from_url(url).flushdb()  # the queues and the unacked set
        return
    from kombu import Connection, Queue

    with Connection(url, connect_timeout=10) as conn:
        queue = Queue("celery", durable=True)(conn.default_channel)
        queue.declare()
        queue.purge()


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers in E.164."""
    return [f"+91987{start + i:07d}" for i in range(count)]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sent_messages(sandbox: Any) -> list[dict[str, str]]:
    """Each message as the stand-in received it: To, Body, DltTemplateId, EncodingType."""
    out = []
    for request in sandbox.requests:
        if request.method != "POST" or "/Sms/" not in request.path:
            continue
        form = request.form
        keys = [k for k, _ in form]
        if "To" in keys:  # one message per request
            out.append(dict(form))
            continue
        if "To[]" in keys:  # one text to many numbers
            shared = {k: v for k, v in form if k != "To[]"}
            out.extend({**shared, "To": v} for k, v in form if k == "To[]")
            continue
        # bulksend: Messages[i][Field] per message
        per: dict[str, dict[str, str]] = {}
        shared = {k: v for k, v in form if not k.startswith("Messages[")}
        for key, value in form:
            if key.startswith("Messages["):
                index, field = key[len("Messages[") :].split("][")
                per.setdefault(index, dict(shared))[field.rstrip("]")] = value
        out.extend(per.values())
    return out
