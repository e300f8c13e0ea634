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
        self,
        overrides: dict,
        name: str,
        concurrency: int = 2,
        broker_url: str = BROKER_URL,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = dict(os.environ, **(extra_env or {}))
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
                *extra_args,
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

    def start(
        name: str = "w1",
        concurrency: int = 2,
        extra_args: tuple[str, ...] = (),
        extra_env: dict[str, str] | None = None,
        **extra,
    ) -> Worker:
        overrides = {
            "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
            "BASE_URL": sandbox.url,
            "CALLBACK_BASE_URL": "http://127.0.0.1:9/exotel/",
            "RATE_LIMIT_STORAGE": f"redis://127.0.0.1:6379/{RATE_DB}",
            "RETRY_BACKOFF": 1.5,
            "RETRY_BACKOFF_MAX": 2.0,
            **extra,
        }
        worker = Worker(overrides, name, concurrency, extra_args=extra_args, extra_env=extra_env)
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


def test_at_least_once_with_lost_answers_sends_at_most_max_attempts_copies(sandbox, start_worker):
    """At-least-once when Exotel accepts but answers too late (the stand-in's hang fault).

    Each lost answer may cost one duplicate, and a message is attempted at most
    MAX_ATTEMPTS times: every number reaches Exotel 1 to MAX_ATTEMPTS times, once per
    attempt, and every row ends accepted or, out of attempts, ``uncertain`` -- never
    pending for ever.
    """
    max_attempts = 3
    sandbox.configure(hang_rate=0.7, hang_seconds=0.6, seed=3)
    start_worker(
        "at-least-once", DELIVERY="at-least-once", READ_TIMEOUT=0.3, MAX_ATTEMPTS=max_attempts
    )
    targets = numbers(300)
    singles = numbers(10, start=5000)
    SmsMessage.objects.send_bulk(to=targets, body="Sale starts today")
    for n in singles:
        SmsMessage.objects.send(n, "Your OTP is 4321")
    assert wait_until(lambda: _open_count() == 0, timeout=180), _open_count()
    accepted = sandbox.recipient_counts()
    rows = list(SmsMessage.objects.values_list("to", "status", "attempts"))
    assert len(rows) == len(targets) + len(singles)
    assert {state for _, state, _ in rows} == {status.QUEUED, status.UNCERTAIN}
    for to, state, attempts in rows:
        # One request per attempt, each accepted (a hang accepts, then answers late).
        assert 1 <= accepted[to] == attempts <= max_attempts, (to, state, attempts)
        if state == status.UNCERTAIN:
            assert attempts == max_attempts, "uncertain only once attempts ran out"
    assert max(accepted.values()) == max_attempts
    assert min(accepted.values()) < max_attempts


@pytest.mark.parametrize("delivery", ["at-most-once", "at-least-once"])
def test_sigkill_mid_batch_loses_nothing_and_sends_nothing_twice(
    sandbox, start_worker, settings, delivery
):
    """Kill the whole worker mid-batch, reconcile, start another: nothing lost or duplicated.

    "Lost" means a message that ends looking handled (or stays open) while Exotel never got
    it. Rows whose request had started when the worker died are ambiguous by nature (no
    idempotency key at Exotel): at-most-once flags them ``uncertain`` and never resends
    them; at-least-once resends them (one duplicate at most, for an answer lost with the
    worker). Everything else is sent exactly once either way.
    """
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "BATCH_PARALLELISM": 2, "DELIVERY": delivery}
    sandbox.configure(latency=0.4)
    targets = numbers(3000)
    first = start_worker("doomed", DELIVERY=delivery)
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
    start_worker("rescuer", DELIVERY=delivery)
    from django_exotel_sms.tasks import send_batch

    send_batch.delay(batch.pk)
    assert wait_until(lambda: _open_count() == 0, timeout=180), batch.status_counts()
    final = batch.status_counts()
    accepted = sandbox.recipient_counts()
    assert len(in_flight) <= 200, "at most one chunk per worker process was in flight"
    # Every number outside the in-flight chunks reached Exotel exactly once.
    for number in set(targets) - in_flight:
        assert accepted.get(number) == 1, number
    if delivery == "at-most-once":
        assert set(final) <= {status.QUEUED, status.UNCERTAIN}, final
        assert max(accepted.values()) == 1, "nothing is ever sent twice"
        uncertain = set(
            SmsMessage.objects.filter(batch=batch, status=status.UNCERTAIN).values_list(
                "to", flat=True
            )
        )
        assert uncertain == in_flight, "exactly the ambiguous rows are flagged"
        # A flagged row either reached Exotel once or never: never silently done.
        assert {n for n in targets if n not in accepted} <= uncertain
    else:
        assert set(final) == {status.QUEUED}, final
        assert set(accepted) == set(targets), "at-least-once: every number reached Exotel"
        # Only the in-flight rows may go twice: one lost answer each, one duplicate at most.
        assert {n for n, c in accepted.items() if c > 1} <= in_flight
        assert max(accepted.values()) <= 2
    assert SmsBatch.objects.get(pk=batch.pk).total == 3000


def test_message_scheduled_two_seconds_ahead_leaves_only_then(sandbox, start_worker):
    """Released by the beat's release_due (embedded beat, every 0.5 s), never by a countdown."""
    from datetime import timedelta

    from django.utils import timezone

    start_worker(
        "sched",
        extra_args=("-B", "-s", str(ROOT / "artifacts" / "celerybeat-sched")),
        extra_env={"TEST_BEAT_RELEASE_INTERVAL": "0.5"},
    )
    warm = SmsMessage.objects.send("+919876511110", "Worker is up")
    assert wait_until(lambda: sandbox.recipient_counts()["+919876511110"] == 1, 60)

    send_at = timezone.now() + timedelta(seconds=2)
    scheduled = SmsMessage.objects.send("+919876511111", "Two seconds later", send_at=send_at)
    assert scheduled.status_reason == "scheduled"
    while timezone.now() < send_at - timedelta(seconds=0.2):
        assert "+919876511111" not in sandbox.recipient_counts()  # not before its time
        time.sleep(0.1)
    assert wait_until(lambda: "+919876511111" in sandbox.recipient_counts(), 30)
    request = next(r for r in sandbox.requests if "+919876511111" in r.recipients)
    assert request.time >= send_at.timestamp()
    # The request reached the stand-in; the worker records its answer a moment later.
    settled = SmsMessage.objects.filter(pk__in=[scheduled.pk, warm.pk]).exclude(status__in=OPEN)
    assert wait_until(lambda: settled.count() == 2, 30)
    _assert_exactly_once(sandbox, ["+919876511110", "+919876511111"])


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
