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
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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
IST = ZoneInfo("Asia/Kolkata")


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


def test_a_promotional_batch_stops_at_the_close_and_completes_after_the_opening(
    sandbox, start_worker, settings, monkeypatch
):
    """1,000 promotional SMS started at 20:50 IST, on a worker that runs a simulated clock.

    The worker and this process read one clock the test moves (tests/simclock.py). Before
    the close the test grants the worker one claim per step, two simulated minutes apart,
    so exactly five chunks leave (20:50 ... 20:58) whatever the machine's speed; at 21:00
    the worker's own claims stop the batch and defer the rest to 10:00. Through the night
    the worker's beat (release_due every 0.5 s) and a reconcile run send nothing; at the
    opening the beat releases the batch and every number reaches Exotel, once.
    """
    from django.utils import timezone

    from django_exotel_sms import scheduling
    from django_exotel_sms.conf import DEFAULTS
    from tests import simclock
    from tests.celery_app import app

    start = datetime(2026, 3, 2, 20, 50, tzinfo=IST)
    close = datetime(2026, 3, 2, 21, 0, tzinfo=IST)
    opening = datetime(2026, 3, 3, 10, 0, tzinfo=IST)
    clock = simclock.SimClock(f"redis://127.0.0.1:6379/{RATE_DB}")
    clock.set(start)
    clock.hold_claims()
    monkeypatch.setattr(timezone, "now", clock.now)
    windows = DEFAULTS["SENDING_WINDOWS"]  # the shipped 10:00-21:00 IST for promotional
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "SENDING_WINDOWS": windows}
    start_worker(
        "window",
        extra_args=("-B", "-s", str(ROOT / "artifacts" / "celerybeat-window")),
        extra_env={"TEST_BEAT_RELEASE_INTERVAL": "0.5", simclock.ENV: clock.url},
        SENDING_WINDOWS=windows,
    )
    recipients = numbers(1000, start=80_000)
    batch = SmsMessage.objects.send_bulk(
        to=recipients, body="50% off", sms_type="promotional", sender="600123"
    )
    rows = batch.messages.all()
    runs = settings.EXOTEL_SMS.get("BATCH_PARALLELISM", DEFAULTS["BATCH_PARALLELISM"])

    # 20:50-20:58: one chunk of 100 per step, claimed and its request made before the clock
    # moves on. (A run claims its next chunk while a request is in flight, so a chunk's
    # answer is recorded only once the run's next claim has returned.)
    steps = [start + timedelta(minutes=2 * k) for k in range(5)]
    for k, at in enumerate(steps, 1):
        clock.set(at)
        clock.grant(1)
        assert wait_until(
            lambda k=k: (
                len(clock.claims()) == k and sum(sandbox.recipient_counts().values()) == 100 * k
            ),
            60,
        ), (clock.claims(), sum(sandbox.recipient_counts().values()))

    # 21:00: the worker's next claims take nothing and defer the rest, visibly.
    clock.set(close)
    clock.open_gate()
    waiting = rows.filter(status=status.PENDING)

    def ended() -> int:  # send_batch runs the worker has finished
        return len(clock.task_runs("django_exotel_sms.tasks.send_batch"))

    assert wait_until(lambda: ended() == runs, 60), (ended(), batch.status_counts())
    claims = clock.claims()
    assert [(at, n) for at, n in claims if n] == [(at, 100) for at in steps]
    assert [at for at, n in claims if not n] == [close] * runs  # each run stopped at the close
    assert set(rows.exclude(status__in=OPEN).values_list("claimed_at", flat=True)) == set(steps)
    assert set(waiting.values_list("status_reason", "next_attempt_at")) == {
        (scheduling.WINDOW, opening)
    }
    assert waiting.count() == 500 and not rows.filter(status=status.SUBMITTING).exists()
    before_close = sandbox.recipient_counts()
    assert sorted(before_close) == recipients[:500] and set(before_close.values()) == {1}

    # 09:59:59: the beat's release_due and a reconcile run on the worker; nothing leaves.
    night = opening - timedelta(seconds=1)
    clock.set(night)
    app.send_task("django_exotel_sms.tasks.reconcile", kwargs={"limit": 5})

    def at_night(task: str) -> list:
        return [value for at, value in clock.task_runs(task) if at == night]

    assert wait_until(
        lambda: (
            len(at_night("django_exotel_sms.tasks.release_due")) >= 3
            and at_night("django_exotel_sms.tasks.reconcile")
        ),
        30,
    )
    released = at_night("django_exotel_sms.tasks.release_due")
    assert all(run == {"batches": 0, "messages": 0} for run in released), released
    (night_reconcile,) = at_night("django_exotel_sms.tasks.reconcile")
    assert night_reconcile["released"] == night_reconcile["resumed_batches"] == 0
    assert sandbox.recipient_counts() == before_close
    assert waiting.count() == 500 and len(clock.claims()) == len(claims)

    # 10:00: the beat releases the batch; the rest leaves, claimed at the opening.
    clock.set(opening)
    assert wait_until(lambda: not rows.filter(status__in=OPEN).exists(), 60), batch.status_counts()
    _assert_exactly_once(sandbox, recipients)
    after = set(rows.filter(to__in=recipients[500:]).values_list("claimed_at", flat=True))
    assert after == {opening}
    assert all(n == 0 or at < close or at >= opening for at, n in clock.claims())
    # Accepted by Exotel, every one (the night's reconcile may have seen a few move on).
    accepted = (status.QUEUED, status.SENDING, status.SUBMITTED, status.SENT)
    assert rows.filter(status__in=accepted, sid__isnull=False).count() == 1000


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
