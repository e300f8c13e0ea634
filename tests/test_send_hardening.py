"""Resends, ownership and outcome writes under lost answers, stalls and database errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone

from django_exotel_sms import dbretry, ratelimit, reconcile, sending, status, tasks
from django_exotel_sms.backends import locmem
from django_exotel_sms.checks import check_settings
from django_exotel_sms.models import SmsMessage
from django_exotel_sms.tracking import StatusReport, apply_report

from .helpers import numbers

pytestmark = pytest.mark.django_db

FAST_RETRIES = {"RETRY_BACKOFF": 0.01, "RETRY_BACKOFF_MAX": 0.05}


@pytest.fixture(autouse=True)
def _no_sleep_between_db_retries(monkeypatch: Any) -> None:
    monkeypatch.setattr(dbretry, "BASE_DELAY", 0.0)


def _pending_batch(count: int, start: int = 0) -> Any:
    # send_async=True with the on-commit hook never run: rows stay pending for the test.
    return SmsMessage.objects.send_bulk(to=numbers(count, start=start), body="Your code is 1234")


# -- 1. at-least-once: a bounded number of copies, then a definite state ---------------------


def test_at_least_once_stops_resending_after_max_attempts(sandbox, settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        **FAST_RETRIES,
        "DELIVERY": "at-least-once",
        "READ_TIMEOUT": 0.3,
        "MAX_ATTEMPTS": 3,
    }
    sandbox.configure(hang_rate=1.0, hang_seconds=0.6)  # every answer comes too late
    message = SmsMessage.objects.send(numbers(1)[0], "Your OTP is 4321")
    sending.run_until_done(lambda: sending.deliver_message(message.pk), max_wait=8)
    message.refresh_from_db()
    assert message.status == status.UNCERTAIN
    assert message.attempts == 3
    assert message.error_message.startswith("Not resent: 3 attempts made (at-least-once).")
    # One copy per attempt: a duplicate per lost answer, MAX_ATTEMPTS copies at most.
    assert list(sandbox.recipient_counts().values()) == [3]


def test_at_least_once_resend_waits_out_a_backoff(sandbox, settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "DELIVERY": "at-least-once",
        "READ_TIMEOUT": 0.3,
        "RETRY_BACKOFF": 2.0,
        "RETRY_BACKOFF_MAX": 60.0,
    }
    sandbox.configure(hang_rate=1.0, hang_seconds=0.6)
    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    first = sending.deliver_message(message.pk)
    assert first.released == 1 and first.retry_after is not None and first.retry_after >= 1.0
    message.refresh_from_db()
    assert message.status == status.PENDING
    assert message.next_attempt_at is not None and message.next_attempt_at > timezone.now()
    assert sending.deliver_message(message.pk).claimed == 0, "not due yet: no resend at once"
    assert list(sandbox.recipient_counts().values()) == [1]


def _stale(pks: list[int], *, attempts: int, started: bool) -> None:
    SmsMessage.objects.filter(pk__in=pks).update(
        status=status.SUBMITTING,
        claimed_at=timezone.now() - timedelta(hours=1),
        request_started_at=timezone.now() - timedelta(hours=1) if started else None,
        attempts=attempts,
    )


def test_stale_claims_at_least_once_are_resent_with_backoff_until_attempts_run_out(settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "DELIVERY": "at-least-once",
        "MAX_ATTEMPTS": 3,
        "RETRY_BACKOFF": 2.0,
    }
    batch = _pending_batch(6)
    pks = list(SmsMessage.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True))
    _stale(pks[:2], attempts=1, started=True)  # may have reached Exotel; attempts remain
    _stale(pks[2:4], attempts=3, started=True)  # may have reached Exotel, out of attempts
    _stale(pks[4:], attempts=3, started=False)  # certainly never reached Exotel
    reclaimed, uncertain = reconcile.recover_stale_claims()
    assert (reclaimed, uncertain) == (4, 2)
    rows = {m.pk: m for m in SmsMessage.objects.filter(batch=batch)}
    for pk in pks[:2]:
        assert rows[pk].status == status.PENDING
        assert rows[pk].next_attempt_at is not None
        assert rows[pk].next_attempt_at > timezone.now(), "resent after a backoff"
    for pk in pks[2:4]:
        assert rows[pk].status == status.UNCERTAIN
        assert rows[pk].error_message.startswith("Not resent: 3 attempts made")
    assert {rows[pk].status for pk in pks[4:]} == {status.PENDING}


def test_stale_claims_resent_after_a_backoff_are_resumed(settings):
    """Not due yet, they are skipped as lost enqueues: reconcile resumes their tasks itself."""
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "DELIVERY": "at-least-once"}
    batch = _pending_batch(2)
    single = SmsMessage.objects.send(numbers(1, start=500)[0], "Hi")
    pks = [*SmsMessage.objects.filter(batch=batch).values_list("pk", flat=True), single.pk]
    _stale(pks, attempts=1, started=True)
    report = reconcile.run(pending_min_age=0)
    assert report.reclaimed_pending == 3
    assert SmsMessage.objects.filter(pk__in=pks, next_attempt_at__gt=timezone.now()).count() == 3
    assert batch.pk in report.batches_to_resume
    assert single.pk in report.messages_to_resume


def test_stale_claim_text_does_not_assert_a_dead_worker(settings):
    batch = _pending_batch(1)
    pk = SmsMessage.objects.get(batch=batch).pk
    _stale([pk], attempts=1, started=True)
    assert reconcile.recover_stale_claims() == (0, 1)
    text = SmsMessage.objects.get(pk=pk).error_message
    assert "Worker lost" not in text and "CLAIM_TIMEOUT" in text


# -- 2. a worker sends only the rows it still owns ------------------------------------------


def test_worker_stalled_past_claim_timeout_sends_nothing_it_lost(sandbox, settings, monkeypatch):
    """Worker A stalls waiting for a rate-limit slot; meanwhile reconcile hands its rows to B."""
    batch = _pending_batch(5)
    real_acquire = ratelimit.acquire
    stalls = []

    def stalling_acquire(*args: Any, **kwargs: Any) -> bool:
        if not stalls:
            stalls.append(1)
            # What happens during A's stall: the claim expires, reconcile recovers it (the
            # request had not started) and worker B sends the rows.
            overridden = {**settings.EXOTEL_SMS, "CLAIM_TIMEOUT": 0}
            from django.test.utils import override_settings

            with override_settings(EXOTEL_SMS=overridden):
                assert reconcile.recover_stale_claims() == (5, 0)
            assert sending.deliver_batch(batch.pk).accepted == 5  # worker B
        return real_acquire(*args, **kwargs)

    monkeypatch.setattr(ratelimit, "acquire", stalling_acquire)
    outcome = sending.deliver_batch(batch.pk)  # worker A
    assert outcome.requests == 0, "worker A sent nothing: its rows were handed over"
    assert max(sandbox.recipient_counts().values()) == 1
    assert len(sandbox.recipient_counts()) == 5
    assert batch.status_counts() == {status.QUEUED: 5}


def test_request_is_built_only_for_rows_still_owned(sandbox):
    batch = _pending_batch(4)
    claim = sending._claim(SmsMessage.objects.filter(batch=batch), 100)
    assert claim is not None
    lost = [r["pk"] for r in claim.rows[:2]]
    # Two rows were handed over (reconcile) and re-claimed by another worker.
    SmsMessage.objects.filter(pk__in=lost).update(claim_token=None, status=status.PENDING)
    sending._deliver(claim, batch)
    posts = [r for r in sandbox.requests if r.method == "POST"]
    assert [sorted(p.recipients) for p in posts] == [sorted(r["to"] for r in claim.rows[2:])]
    assert set(SmsMessage.objects.filter(pk__in=lost).values_list("status", flat=True)) == {
        status.PENDING
    }


def test_late_answer_settles_rows_reconcile_flagged_uncertain(sandbox, settings, monkeypatch):
    """A stall mid-request: reconcile flags the rows; the late answer still records the Sids."""
    batch = _pending_batch(3)
    backend_send = sending._transport

    def slow_transport(rows: Any, b: Any) -> Any:
        request = backend_send(rows, b)

        def run() -> Any:
            from django.test.utils import override_settings

            with override_settings(EXOTEL_SMS={**settings.EXOTEL_SMS, "CLAIM_TIMEOUT": 0}):
                assert reconcile.recover_stale_claims() == (0, 3)
            return request()

        return run

    monkeypatch.setattr(sending, "_transport", slow_transport)
    sending.deliver_batch(batch.pk)
    rows = SmsMessage.objects.filter(batch=batch)
    assert {m.status for m in rows} == {status.QUEUED}
    assert all(m.sid and not m.error_message for m in rows)


# -- 2. the system check --------------------------------------------------------------------

VALID: dict[str, Any] = {
    "ACCOUNT_SID": "acme",
    "API_KEY": "key-123",
    "API_TOKEN": "token-456",
    "CALLBACK_BASE_URL": "https://sms.example.com/exotel/",
}


def test_claim_timeout_check_default_settings_pass(settings):
    settings.EXOTEL_SMS = dict(VALID)
    assert check_settings() == []


def test_claim_timeout_shorter_than_the_longest_claim_is_an_error(settings):
    settings.EXOTEL_SMS = {**VALID, "CLAIM_TIMEOUT": 90}
    [message] = check_settings()
    assert message.id == "django_exotel_sms.E030"
    assert "EXOTEL_SMS['CLAIM_TIMEOUT'] (90 s)" in message.msg
    assert "= 95 s" in message.msg
    assert "Raise EXOTEL_SMS['CLAIM_TIMEOUT'] above 95 s" in message.hint


def test_claim_timeout_check_names_the_account_whose_read_timeout_is_longest(settings):
    promo = {"ACCOUNT_SID": "p", "API_KEY": "pk", "API_TOKEN": "pt", "READ_TIMEOUT": 250}
    settings.EXOTEL_SMS = {**VALID, "ACCOUNTS": {"promo": promo}}
    [message] = check_settings()
    assert message.id == "django_exotel_sms.E030"
    assert "EXOTEL_SMS['ACCOUNTS']['promo']['READ_TIMEOUT'] (250 s)" in message.msg
    settings.EXOTEL_SMS = {**VALID, "ACCOUNTS": {"promo": promo}, "RATE_LIMIT_MAX_WAIT": 10}
    assert check_settings() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"CLAIM_TIMEOUT": 0}, "django_exotel_sms.E031"),
        ({"CLAIM_TIMEOUT": "300"}, "django_exotel_sms.E031"),
        ({"RATE_LIMIT_MAX_WAIT": -1}, "django_exotel_sms.E032"),
    ],
)
def test_claim_timeout_and_max_wait_must_be_numbers(settings, changes, expected):
    settings.EXOTEL_SMS = {**VALID, **changes}
    assert [m.id for m in check_settings()] == [expected]


def test_rate_limit_max_wait_is_the_limiters_default(settings, monkeypatch):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT": "1/minute"}
    ratelimit.reset()
    assert ratelimit.acquire() is True
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_MAX_WAIT": 0}
    assert ratelimit.acquire() is False  # no slot, and no wait


# -- 6. outcome writes under transient database errors --------------------------------------


def _failing(times: int, real: Any) -> Any:
    calls = {"n": 0}

    def update_rows(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise OperationalError("database is locked")
        return real(*args, **kwargs)

    return update_rows


def test_outcome_write_is_retried_on_a_transient_database_error(monkeypatch):
    batch = _pending_batch(3)
    monkeypatch.setattr(sending, "_write_outcome", _failing(2, sending._write_outcome))
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.accepted == 3
    rows = SmsMessage.objects.filter(batch=batch)
    assert {m.status for m in rows} == {status.QUEUED}
    assert all(m.sid and not m.error_message for m in rows)
    assert len(locmem.outbox) == 3, "sent once"


def test_outcome_write_that_keeps_failing_records_the_true_cause(monkeypatch):
    batch = _pending_batch(2)
    monkeypatch.setattr(sending, "_write_outcome", _failing(10**6, sending._write_outcome))
    outcome = sending.deliver_batch(batch.pk)
    assert outcome.uncertain == 2
    rows = list(SmsMessage.objects.filter(batch=batch))
    assert {m.status for m in rows} == {status.UNCERTAIN}
    for m in rows:
        assert m.error_message.startswith("Outcome write failed: database is locked")
    # Reconcile does not re-label them (they are no longer submitting)...
    assert reconcile.recover_stale_claims() == (0, 0)
    # ...and Exotel's report, when it comes, settles them and clears the stale text.
    sids = [r.sid for r in locmem.outbox]
    for m, sid in zip(rows, sids, strict=True):
        assert apply_report(m.pk, StatusReport(status=status.SENT, sid=sid), "callback")
        m.refresh_from_db()
        assert (m.status, m.error_message) == (status.SENT, "")


def test_an_exotel_report_clears_a_local_error_text():
    batch = _pending_batch(1)
    message = SmsMessage.objects.get(batch=batch)
    SmsMessage.objects.filter(pk=message.pk).update(
        status=status.UNCERTAIN, sid="sid-1", error_message="Exotel may have accepted it."
    )
    assert apply_report(message.pk, StatusReport(status=status.SENT), "callback")
    message.refresh_from_db()
    assert (message.status, message.error_message) == (status.SENT, "")


def test_send_task_is_retried_on_a_transient_database_error(monkeypatch):
    batch = _pending_batch(2)
    real = sending.deliver_batch
    calls: list[int] = []

    def flaky(batch_id: int, **kwargs: Any) -> Any:
        calls.append(batch_id)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real(batch_id, **kwargs)

    monkeypatch.setattr(sending, "deliver_batch", flaky)
    # Run in-process: a retry is applied again at once, its countdown ignored.
    result = tasks.send_batch.apply((batch.pk,))
    assert result.successful(), result.traceback
    assert calls == [batch.pk, batch.pk]
    assert batch.status_counts() == {status.QUEUED: 2}


def test_send_task_retries_are_bounded(monkeypatch):
    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    calls: list[int] = []

    def broken(message_id: int) -> Any:
        calls.append(message_id)
        raise OperationalError("database is locked")

    monkeypatch.setattr(sending, "deliver_message", broken)
    result = tasks.send_message.apply((message.pk,))
    assert result.failed() and isinstance(result.result, OperationalError)
    assert len(calls) == 1 + tasks.send_message.max_retries
    assert tasks.send_message.max_retries == 5


def test_a_database_error_no_retry_can_fix_is_raised_at_once():
    """A missing table is an OperationalError on SQLite too, but retrying cannot help."""
    import sqlite3

    from django.db import OperationalError

    calls = []

    def write():
        calls.append(1)
        try:
            raise sqlite3.OperationalError("no such table: nowhere")
        except sqlite3.OperationalError as cause:
            raise OperationalError(str(cause)) from cause

    with pytest.raises(OperationalError):
        dbretry.retry_write(write, using="default", what="test")
    assert len(calls) == 1


def test_send_task_does_not_retry_a_database_error_no_retry_can_fix(monkeypatch):
    """The task follows the same rule as every write: only transient errors are retried."""
    import sqlite3

    message = SmsMessage.objects.send(numbers(1)[0], "Hi")
    calls: list[int] = []

    def broken(message_id: int) -> Any:
        calls.append(message_id)
        try:
            raise sqlite3.OperationalError("no such column: nowhere")
        except sqlite3.OperationalError as cause:
            raise OperationalError(str(cause)) from cause

    monkeypatch.setattr(sending, "deliver_message", broken)
    result = tasks.send_message.apply((message.pk,))
    assert result.failed() and isinstance(result.result, OperationalError)
    assert calls == [message.pk]
