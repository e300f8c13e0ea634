"""The sending layer (claim -> transport -> record) against the local Exotel, in-process."""

from __future__ import annotations

import math
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_exotel_sms import reconcile, sending, status
from django_exotel_sms.models import SmsBatch, SmsMessage, StatusEvent
from django_exotel_sms.sandbox import SandboxServer

from .helpers import needs_row_locks, numbers

pytestmark = pytest.mark.django_db


def _bulk(count: int, **kwargs) -> SmsBatch:
    # send_async=True with the on-commit hook never run: rows stay pending for the test to drive.
    return SmsMessage.objects.send_bulk(to=numbers(count), body="Your code is 1234", **kwargs)


def _statuses(batch: SmsBatch) -> dict[str, int]:
    return batch.status_counts()


def _post_sizes(sandbox: SandboxServer) -> list[int]:
    return [len(r.recipients) for r in sandbox.requests if r.method == "POST"]


def test_static_batch_is_chunked_one_request_per_hundred(sandbox):
    batch = _bulk(250)
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.requests == 3
    assert _post_sizes(sandbox) == [100, 100, 50]
    assert _statuses(batch) == {status.QUEUED: 250}
    assert all(n == 1 for n in sandbox.recipient_counts().values())
    assert SmsMessage.objects.filter(batch=batch, sid__isnull=True).count() == 0
    assert StatusEvent.objects.filter(message__batch=batch, source="api").count() == 250


def test_dynamic_batch_uses_bulksend(sandbox):
    batch = SmsMessage.objects.send_bulk(
        messages=[{"to": n, "body": f"Hello {i}"} for i, n in enumerate(numbers(120))]
    )
    sending.deliver_batch(batch.pk)
    posts = [r for r in sandbox.requests if r.method == "POST"]
    assert [r.path.rsplit("/", 1)[-1] for r in posts] == ["bulksend.json"] * 2
    assert [len(r.recipients) for r in posts] == [100, 20]
    assert _statuses(batch) == {status.QUEUED: 120}


def test_partial_success_207_rejects_only_invalid_entries(sandbox):
    targets = numbers(10)
    for bad in targets[3:5]:
        sandbox.set_outcome(bad, "invalid")
    batch = SmsMessage.objects.send_bulk(to=targets, body="Hi")
    sending.deliver_batch(batch.pk)
    rejected = SmsMessage.objects.filter(batch=batch, status=status.REJECTED)
    assert sorted(rejected.values_list("to", flat=True)) == targets[3:5]
    assert set(rejected.values_list("error_code", flat=True)) == {23010}
    assert set(rejected.values_list("sid", flat=True)) == {None}
    assert _statuses(batch) == {status.QUEUED: 8, status.REJECTED: 2}


def test_throttled_requests_are_retried_and_never_duplicated(sandbox, settings):
    sandbox.configure(throttle_rate=1.0, retry_after=0)
    batch = _bulk(150)
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.retry_after is not None
    assert _statuses(batch) == {status.PENDING: 150}  # 100 released, 50 never claimed
    assert SmsMessage.objects.filter(batch=batch, error_code=40402).count() == 100
    sandbox.configure(throttle_rate=0.0)
    sending.run_until_done(lambda: sending.deliver_batch(batch.pk), max_wait=30)
    assert _statuses(batch) == {status.QUEUED: 150}
    assert max(sandbox.recipient_counts().values()) == 1
    assert len(sandbox.recipient_counts()) == 150


def test_unavailable_then_recovering_exotel(sandbox):
    sandbox.configure(unavailable_rate=0.5, seed=7)
    batch = _bulk(500)
    sending.run_until_done(lambda: sending.deliver_batch(batch.pk), max_wait=60)
    assert _statuses(batch) == {status.QUEUED: 500}
    assert sum(sandbox.recipient_counts().values()) == 500


def test_permanent_error_rejects_at_once_with_its_code(sandbox, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "API_TOKEN": "wrongtoken"}
    batch = _bulk(5)
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.retry_after is None
    assert _statuses(batch) == {status.REJECTED: 5}
    assert set(SmsMessage.objects.filter(batch=batch).values_list("error_code", flat=True)) == {
        34010
    }
    assert "wrongtoken" not in "".join(
        SmsMessage.objects.filter(batch=batch).values_list("error_message", flat=True)
    )


def test_read_timeout_marks_uncertain_and_does_not_resend(sandbox, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "READ_TIMEOUT": 0.3}
    sandbox.configure(hang_rate=1.0, hang_seconds=1.0)
    batch = _bulk(3)
    sending.run_until_done(lambda: sending.deliver_batch(batch.pk), max_wait=10)
    assert _statuses(batch) == {status.UNCERTAIN: 3}
    # Exotel did take them: resending would have sent each twice.
    assert sorted(sandbox.recipient_counts().values()) == [1, 1, 1]
    assert len(_post_sizes(sandbox)) == 1


def test_read_timeout_at_least_once_resends(sandbox, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "READ_TIMEOUT": 0.3, "DELIVERY": "at-least-once"}
    sandbox.configure(hang_rate=1.0, hang_seconds=1.0)
    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    first = sending.deliver_message(message.pk)
    assert first.released == 1
    sandbox.configure(hang_rate=0.0)
    sending.run_until_done(lambda: sending.deliver_message(message.pk), max_wait=10)
    message.refresh_from_db()
    assert message.status == status.QUEUED
    assert list(sandbox.recipient_counts().values()) == [2]  # the documented trade-off


def test_connection_refused_is_retried_until_exotel_is_back(settings):
    probe = SandboxServer(api_key="sandboxkey", api_token="sandboxtoken").start()
    port = int(probe.url.rsplit(":", 1)[1])
    probe.stop()
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
        "BASE_URL": f"http://127.0.0.1:{port}",
        "CALLBACK_BASE_URL": "http://127.0.0.1:9/exotel/",
    }
    batch = _bulk(20)
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.released == 20 and outcome.retry_after is not None
    assert _statuses(batch) == {status.PENDING: 20}
    server = SandboxServer(port=port, api_key="sandboxkey", api_token="sandboxtoken").start()
    try:
        sending.run_until_done(lambda: sending.deliver_batch(batch.pk), max_wait=30)
        assert _statuses(batch) == {status.QUEUED: 20}
        assert sum(server.recipient_counts().values()) == 20
    finally:
        server.stop()


def test_retries_exhausted_end_in_failed(settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
        "BASE_URL": "http://127.0.0.1:9",
        "MAX_ATTEMPTS": 2,
        "RETRY_BACKOFF": 0.01,
        "RETRY_BACKOFF_MAX": 0.05,
    }
    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    sending.run_until_done(lambda: sending.deliver_message(message.pk), max_wait=10)
    message.refresh_from_db()
    assert message.status == status.FAILED
    assert message.attempts == 2
    assert message.error_message.startswith("Gave up after 2 attempts")


def test_delivery_is_idempotent_for_a_sent_message(sandbox):
    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    assert sending.deliver_message(message.pk).claimed == 1
    assert sending.deliver_message(message.pk).claimed == 0  # a redelivered task is a no-op
    assert list(sandbox.recipient_counts().values()) == [1]


def test_stale_claims_are_recovered(settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "CLAIM_TIMEOUT": 0}
    batch = _bulk(4)
    pks = list(SmsMessage.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True))
    SmsMessage.objects.filter(pk__in=pks).update(
        status=status.SUBMITTING, claimed_at="2020-01-01T00:00:00Z"
    )
    # Two reached the HTTP request before the worker died; two never did.
    SmsMessage.objects.filter(pk__in=pks[:2]).update(request_started_at="2020-01-01T00:00:01Z")
    report = reconcile.run(pending_min_age=0)
    assert (report.reclaimed_pending, report.marked_uncertain) == (2, 2)
    assert batch.pk in report.batches_to_resume
    assert _statuses(batch) == {status.PENDING: 2, status.UNCERTAIN: 2}


@pytest.mark.parametrize("kind", ["static", "dynamic", "mixed"])
def test_queries_per_chunk_are_constant(sandbox, kind):
    """Per 100-message chunk the query count is the same whatever the chunk holds."""

    def make(count: int, offset: int) -> SmsBatch:
        targets = numbers(count, start=offset)
        if kind == "static":
            return SmsMessage.objects.send_bulk(to=targets, body="Same text")
        if kind == "mixed":
            for bad in targets[::7]:
                sandbox.set_outcome(bad, "invalid")
        return SmsMessage.objects.send_bulk(
            messages=[{"to": n, "body": f"Text {i} ✓" * (i % 3 + 1)} for i, n in enumerate(targets)]
        )

    def round_trip(sql: str) -> bool:
        # The test's own transaction makes the outcome write take a savepoint; a worker
        # in autocommit sends neither.
        return not sql.upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))

    counts = {}
    for chunks in (1, 2, 3):
        batch = make(100 * chunks, offset=chunks * 1000)
        with CaptureQueriesContext(connection) as ctx:
            sending.deliver_batch(batch.pk)
        counts[chunks] = sum(1 for q in ctx.captured_queries if round_trip(q["sql"]))
        assert SmsMessage.objects.filter(batch=batch, status=status.PENDING).count() == 0
    per_chunk = counts[2] - counts[1]
    assert counts[3] - counts[2] == per_chunk
    # PostgreSQL: claim, mark, outcome (lock, update, history), one statement each.
    assert per_chunk <= (3 if connection.vendor == "postgresql" else 11), counts


@pytest.mark.django_db(transaction=True)
def test_next_chunk_is_claimed_while_a_request_is_in_flight(sandbox, monkeypatch):
    """Pipelined: the second chunk's claim runs during the first chunk's HTTP request."""
    batch = SmsMessage.objects.send_bulk(to=numbers(250, start=610_000), body="Your code")
    claims: list[int] = []
    claimed_ahead = threading.Event()
    seen_in_flight: list[bool] = []
    real_claim, real_transport = sending._claim, sending._transport

    def claim(*args, **kwargs):
        result = real_claim(*args, **kwargs)
        claims.append(len(result.rows) if result else 0)
        if len(claims) >= 2:
            claimed_ahead.set()
        return result

    def transport(rows, b):
        request = real_transport(rows, b)

        def run():
            if not seen_in_flight:
                # The guard only bounds a sequential worker's wait; never a speed assertion.
                seen_in_flight.append(claimed_ahead.wait(10))
            return request()

        return run

    monkeypatch.setattr(sending, "_claim", claim)
    monkeypatch.setattr(sending, "_transport", transport)
    outcome = sending.deliver_batch(batch.pk)
    assert seen_in_flight == [True]
    assert claims[:3] == [100, 100, 50]
    assert outcome.accepted == 250 and _post_sizes(sandbox) == [100, 100, 50]
    assert _statuses(batch) == {status.QUEUED: 250}


@pytest.mark.django_db(transaction=True)
def test_a_chunk_claimed_ahead_is_given_back_when_the_batch_must_wait(sandbox):
    """A retryable refusal stops the run: the chunk claimed ahead is pending again, its
    attempt not counted, its request never made."""
    batch = SmsMessage.objects.send_bulk(to=numbers(200, start=620_000), body="Your code")
    sandbox.configure(unavailable_rate=1.0)
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.retry_after is not None and outcome.released == 100
    rows = SmsMessage.objects.filter(batch=batch)
    assert _statuses(batch) == {status.PENDING: 200}
    assert sorted(set(rows.values_list("attempts", flat=True))) == [0, 1]
    assert rows.filter(attempts=0, claim_token__isnull=True).count() == 100
    assert len(_post_sizes(sandbox)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_chunk_claimed_ahead_is_given_back_when_the_request_raises(sandbox, monkeypatch):
    """An unexpected error in a request ends the run: its own chunk keeps its state for
    reconcile (the request started), the chunk claimed meanwhile is pending again at once."""
    batch = SmsMessage.objects.send_bulk(to=numbers(200, start=630_000), body="Your code")
    real_transport = sending._transport

    def transport(rows, b):
        request = real_transport(rows, b)

        def run():
            request()
            raise RuntimeError("boom after the request")

        return run

    monkeypatch.setattr(sending, "_transport", transport)
    with pytest.raises(RuntimeError, match="boom"):
        sending.deliver_batch(batch.pk)
    rows = SmsMessage.objects.filter(batch=batch)
    assert _statuses(batch) == {status.SUBMITTING: 100, status.PENDING: 100}
    assert rows.filter(status=status.SUBMITTING, request_started_at__isnull=False).count() == 100
    assert rows.filter(status=status.PENDING, attempts=0, claim_token__isnull=True).count() == 100


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_workers_send_each_message_once(sandbox):
    """Row claiming with SKIP LOCKED (PostgreSQL, MariaDB): two workers on one batch, no overlap."""
    sandbox.configure(latency=0.02)
    # Numbers no other test uses: a late callback from an earlier test (MariaDB reuses
    # primary keys after TRUNCATE) must not be able to adopt one of these rows.
    batch = SmsMessage.objects.send_bulk(to=numbers(1000, start=600_000), body="Your code")
    barrier = threading.Barrier(2)
    outcomes: list[sending.Outcome] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            outcomes.append(sending.deliver_batch(batch.pk))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(o.claimed > 0 for o in outcomes), "both workers should have taken chunks"
    assert sum(o.claimed for o in outcomes) == 1000
    assert _statuses(batch) == {status.QUEUED: 1000}
    counts = sandbox.recipient_counts()
    assert len(counts) == 1000 and max(counts.values()) == 1
    assert len(_post_sizes(sandbox)) == math.ceil(1000 / 100)
