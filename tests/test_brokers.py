"""One real-worker round trip on each broker: Celery over Redis and over RabbitMQ.

The worker subprocess and this process use the same broker; the shared rate limiter stays on
Redis. The fault-injection worker tests (tests/test_celery_worker.py) run on RabbitMQ too, in
``nox -s brokers-rabbitmq``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from django_exotel_sms import status
from django_exotel_sms.models import SmsMessage

from .helpers import (
    BROKER_URL,
    RABBITMQ_BROKER,
    REDIS_BROKER,
    needs_postgres,
    numbers,
    purge_broker,
    use_broker,
    wait_until,
)
from .test_celery_worker import RATE_DB, ROOT, Worker

pytestmark = [needs_postgres, pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

BROKERS = {"redis": REDIS_BROKER, "rabbitmq": RABBITMQ_BROKER}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(params=list(BROKERS))
def broker(request) -> Iterator[str]:
    url = BROKERS[request.param]
    if not _reachable(url) and not os.environ.get("CI"):
        pytest.skip(f"{request.param} is not running on {urlsplit(url).netloc}")
    from tests.celery_app import app

    purge_broker(url)
    redis.Redis(host="127.0.0.1", port=6379, db=RATE_DB).flushdb()
    use_broker(app, url)
    yield url
    purge_broker(url)
    use_broker(app, BROKER_URL)


@pytest.fixture
def worker_on(sandbox) -> Iterator:
    (ROOT / "artifacts").mkdir(exist_ok=True)
    workers: list[Worker] = []

    def start(url: str, name: str) -> Worker:
        overrides = {
            "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
            "BASE_URL": sandbox.url,
            "CALLBACK_BASE_URL": "http://127.0.0.1:9/exotel/",
            "RATE_LIMIT_STORAGE": f"redis://127.0.0.1:6379/{RATE_DB}",
        }
        workers.append(Worker(overrides, name, concurrency=2, broker_url=url))
        return workers[-1]

    yield start
    for worker in workers:
        worker.stop()


def test_bulk_of_300_round_trip(broker, worker_on, sandbox):
    from tests.celery_app import app

    scheme = urlsplit(broker).scheme
    worker_on(broker, f"broker-{scheme}")
    # The worker answers a ping sent over this process's connection: both are on this broker.
    assert app.connection_for_write().transport.driver_type == scheme
    assert wait_until(lambda: bool(app.control.ping(timeout=1.0)), timeout=60)

    targets = numbers(300)
    batch = SmsMessage.objects.send_bulk(to=targets, body=f"Hello over {scheme}")
    assert wait_until(
        lambda: not batch.messages.filter(status__in=(status.PENDING, status.SUBMITTING)).exists(),
        timeout=120,
    ), batch.status_counts()
    assert batch.status_counts() == {status.QUEUED: 300}
    counts = sandbox.recipient_counts()
    assert set(counts) == set(targets) and max(counts.values()) == 1
    assert sorted(len(r.recipients) for r in sandbox.requests if r.method == "POST") == [100] * 3
