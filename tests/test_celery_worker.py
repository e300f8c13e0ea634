"""Real Celery workers (subprocesses) on a real broker and PostgreSQL.

The broker is CELERY_BROKER_URL's (Redis unless set: ``nox -s brokers-rabbitmq`` runs these
on RabbitMQ); the rate limiter is on Redis either way.

Each test proves that every message ends in a definite state and that the local
Exotel's request log shows no recipient sent twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import connection

from django_exotel_sms import reconcile, status
from django_exotel_sms.models import SmsBatch, SmsMessage

from .helpers import BROKER_URL, needs_postgres, numbers, purge_broker, use_broker, wait_until

pytestmark = [needs_postgres, pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
# Concurrent runs (e.g. two checkouts) each need their own Redis database for the limiter.
RATE_DB = int(os.environ.get("TEST_RATE_DB", "14"))
OPEN = (status.PENDING, status.SUBMITTING)


@pytest.fixture(autouse=True)
def _broker(settings) -> Iterator[None]:
    purge_broker(BROKER_URL)
    redis.Redis(host="127.0.0.1", port=6379, db=RATE_DB).flushdb()
    from tests.celery_app import app

    use_broker(app, BROKER_URL)
    yield
    purge_broker(BROKER_URL)


class Worker:
    def __init__(
        self, overrides: dict, name: str, concurrency: int = 2, broker_url: str = BROKER_URL
    ) -> None:
        env = dict(os.environ)
        env.update(
            TEST_DB="postgres",
            PGDATABASE=connection.settings_dict["NAME"],
            CELERY_BROKER_URL=broker_url,
            EXOTEL_SMS_OVERRIDES=json.dumps(overrides),
            DJANGO_SETTINGS_MODULE="tests.settings",
        )
        self.log = open(ROOT / "artifacts" / f"worker-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app",
                "worker",
                "-l",
                "warning",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL takes the children too
        )

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def start_worker(sandbox) -> Iterator:
    (ROOT / "artifacts").mkdir(exist_ok=True)
    workers: list[Worker] = []

    def start(name: str = "w1", concurrency: int = 2, **extra) -> Worker:
        overrides = {
            "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
            "BASE_URL": sandbox.url,
            "CALLBACK_BASE_URL": "http://127.0.0.1:9/exotel/",
            "RATE_LIMIT_STORAGE": f"redis://127.0.0.1:6379/{RATE_DB}",
            "RETRY_BACKOFF": 1.5,
            "RETRY_BACKOFF_MAX": 2.0,
            **extra,
        }
        worker = Worker(overrides, name, concurrency)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _open_count() -> int:
    return SmsMessage.objects.filter(status__in=OPEN).count()


def _assert_exactly_once(sandbox, expected: list[str]) -> None:
    counts = sandbox.recipient_counts()
    twice = {n: c for n, c in counts.items() if c > 1}
    assert not twice, f"sent more than once: {twice}"
    assert set(counts) == set(expected), "every message reached Exotel, once"


def test_worker_sends_under_throttling_unavailability_and_latency(sandbox, start_worker, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "BATCH_PARALLELISM": 2}
    sandbox.configure(
        throttle_rate=0.2,
        unavailable_rate=0.1,
        retry_after=0,
        latency=0.01,
        latency_jitter=0.02,
        seed=11,
    )
    start_worker("faults")
    static = numbers(600)
    dynamic = numbers(300, start=5000)
    singles = numbers(20, start=9000)
    SmsMessage.objects.send_bulk(to=static, body="Sale starts today")
    SmsMessage.objects.send_bulk(
        messages=[{"to": n, "body": f"Order {i} shipped"} for i, n in enumerate(dynamic)]
    )
    for n in singles:
        SmsMessage.objects.send(n, "Your OTP is 4321")
    assert wait_until(lambda: _open_count() == 0, timeout=180), _open_count()
    assert set(SmsMessage.objects.values_list("status", flat=True)) == {status.QUEUED}
    assert SmsMessage.objects.filter(sid__isnull=True).count() == 0
    _assert_exactly_once(sandbox, static + dynamic + singles)
    assert max(len(r.recipients) for r in sandbox.requests if r.method == "POST") <= 100
    throttled = [r for r in sandbox.requests if r.status in (429, 503)]
    assert throttled, "the fault injection should have produced 429/503 answers"


def test_read_timeouts_end_uncertain_never_resent(sandbox, start_worker):
    sandbox.configure(hang_rate=0.3, hang_seconds=1.5, seed=5)
    start_worker("timeouts", READ_TIMEOUT=0.5)
    targets = numbers(1000)
    SmsMessage.objects.send_bulk(to=targets, body="Hello")
    assert wait_until(lambda: _open_count() == 0, timeout=120), _open_count()
    counts = SmsMessage.objects.values_list("status", flat=True)
    assert set(counts) <= {status.QUEUED, status.UNCERTAIN}
    assert SmsMessage.objects.filter(status=status.UNCERTAIN).exists()
    # Uncertain means "Exotel may have it": here it always did, and nothing went twice.
    _assert_exactly_once(sandbox, targets)


def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(sandbox, start_worker, settings):
    """Kill the whole worker mid-batch, reconcile, start another: nothing lost or duplicated.

    "Lost" means a message that ends looking handled (or stays open) while Exotel never got
    it. Rows whose request had started when the worker died are ambiguous by nature (no
    idempotency key at Exotel): the default at-most-once mode flags them ``uncertain`` and
    never resends them. Everything else is sent exactly once.
    """
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "BATCH_PARALLELISM": 2}
    sandbox.configure(latency=0.4)
    targets = numbers(3000)
    first = start_worker("doomed")
    batch = SmsMessage.objects.send_bulk(to=targets, body="Flash sale")
    assert wait_until(
        lambda: len([r for r in sandbox.requests if r.method == "POST"]) >= 4, timeout=60
    )
    first.kill()
    time.sleep(1.0)  # let requests the dead worker left in flight finish at the sandbox
    counts = batch.status_counts()
    assert counts.get(status.PENDING, 0) > 0, "the kill should have come mid-batch"
    in_flight = {
        to
        for to in SmsMessage.objects.filter(
            batch=batch, status=status.SUBMITTING, request_started_at__isnull=False
        ).values_list("to", flat=True)
    }

    # What reconcile does on its schedule, with a claim timeout that has already passed.
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "CLAIM_TIMEOUT": 0}
    report = reconcile.run(pending_min_age=0)
    assert batch.pk in report.batches_to_resume
    start_worker("rescuer")
    from django_exotel_sms.tasks import send_batch

    send_batch.delay(batch.pk)
    assert wait_until(lambda: _open_count() == 0, timeout=180), batch.status_counts()
    final = batch.status_counts()
    accepted = sandbox.recipient_counts()
    assert len(in_flight) <= 200, "at most one chunk per worker process was in flight"
    # Every number outside the in-flight chunks reached Exotel exactly once.
    for number in set(targets) - in_flight:
        assert accepted.get(number) == 1, number
    assert set(final) <= {status.QUEUED, status.UNCERTAIN}, final
    assert max(accepted.values()) == 1, "nothing is ever sent twice"
    uncertain = set(
        SmsMessage.objects.filter(batch=batch, status=status.UNCERTAIN).values_list("to", flat=True)
    )
    assert uncertain == in_flight, "exactly the ambiguous rows are flagged"
    # A flagged row either reached Exotel once or never: never silently done.
    assert {n for n in targets if n not in accepted} <= uncertain
    assert SmsBatch.objects.get(pk=batch.pk).total == 3000


def test_recipient_limits_hold_across_two_workers_and_the_web_process(
    sandbox, start_worker, settings
):
    """Per-recipient limits live in Redis: messages composed anywhere share one window."""
    from tests.celery_app import app

    limits = {"RECIPIENT_LIMITS": {"*": "5/hour"}}
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "RATE_LIMIT_STORAGE": f"redis://127.0.0.1:6379/{RATE_DB}",
        **limits,
    }
    start_worker("limits1", **limits)
    start_worker("limits2", **limits)
    number, other = numbers(2, start=70_000)
    for _ in range(12):  # composed in the workers, whichever takes each task
        app.send_task("tests.send_to_one", args=[number])
    for _ in range(4):  # composed here, in the web process
        SmsMessage.objects.send_bulk(to=[number], body="Your code is 1234")
    SmsMessage.objects.send_bulk(to=[other], body="Your code is 1234")

    def settled() -> bool:
        open_ = SmsMessage.objects.filter(status__in=(status.PENDING, status.SUBMITTING))
        return SmsMessage.objects.count() == 17 and not open_.exists()

    assert wait_until(settled, timeout=120), list(SmsMessage.objects.values_list("status"))
    rows = SmsMessage.objects.filter(to=number)
    assert rows.filter(status=status.QUEUED).count() == 5
    assert rows.filter(status=status.SUPPRESSED, status_reason="rate_limited").count() == 11
    assert SmsMessage.objects.get(to=other).status == status.QUEUED
    counts = sandbox.recipient_counts()
    assert (counts[number], counts[other]) == (5, 1)
