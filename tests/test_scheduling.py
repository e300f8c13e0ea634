"""Scheduled sends, sending windows, expiry and cancellation, with an injected clock.

The clock replaces ``django.utils.timezone.now`` (what the claim, the gate, compose and
``auto_now`` fields read); requests go over real HTTP to the sandbox, whose request log
shows what reached "Exotel". Tasks are recorded, not run, and the test runs what a
worker would: so a test also sees that nothing sat in a countdown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_exotel_sms import (
    cancellation,
    gate,
    reconcile,
    scheduling,
    sending,
    signals,
    status,
    tasks,
)
from django_exotel_sms.compose import SmsValidationError
from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate, StatusEvent
from django_exotel_sms.sandbox import SandboxServer
from tests.helpers import needs_row_locks, numbers

pytestmark = pytest.mark.django_db(transaction=True)

IST = ZoneInfo("Asia/Kolkata")
UTC = dt_timezone.utc

# Promotional SMS to Indian numbers need a 6-digit numeric header (compose refuses others).
PROMO_SENDER = "600123"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(autouse=True)
def _default_windows(settings: Any) -> None:
    """The shipped default windows (the test settings turn windows off)."""
    from django_exotel_sms.conf import DEFAULTS

    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "SENDING_WINDOWS": DEFAULTS["SENDING_WINDOWS"]}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(datetime(2026, 3, 2, 6, 30, tzinfo=UTC))  # 12:00 in India: every window open
    monkeypatch.setattr(timezone, "now", c)
    return c


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, Any]]:
    """Tasks handed to the broker, as (task, id, countdown); none runs by itself."""
    calls: list[tuple[str, int, Any]] = []
    for task in (tasks.send_message, tasks.send_batch):
        name = task.name.rsplit(".", 1)[-1]

        def record(args: tuple[int], name: str = name, **kwargs: Any) -> None:
            calls.append((name, args[0], kwargs.get("countdown")))

        monkeypatch.setattr(task, "apply_async", record)
    return calls


def run(calls: list[tuple[str, int, Any]]) -> None:
    """Do what a worker would with the recorded tasks, then forget them."""
    todo, calls[:] = list(calls), []
    for name, pk, _ in todo:
        if name == "send_batch":
            sending.deliver_batch(pk)
        else:
            sending.deliver_message(pk)


def sent_to(sandbox: SandboxServer) -> list[str]:
    return [n for r in sandbox.requests if r.method == "POST" for n in r.recipients]


@pytest.fixture
def status_signals() -> Iterator[list[tuple[str, int, str]]]:
    seen: list[tuple[str, int, str]] = []

    def changed(sender: Any, message: SmsMessage, new_status: str, **kw: Any) -> None:
        seen.append(("changed", message.pk, new_status))

    def failed(sender: Any, message: SmsMessage, **kw: Any) -> None:
        seen.append(("failed", message.pk, message.status))

    signals.sms_status_changed.connect(changed)
    signals.sms_failed.connect(failed)
    yield seen
    signals.sms_status_changed.disconnect(changed)
    signals.sms_failed.disconnect(failed)


# -- send_at ------------------------------------------------------------------------------


def test_scheduled_message_reaches_exotel_only_once_due(sandbox, clock, enqueued) -> None:
    at = clock.now + timedelta(hours=1)
    message = SmsMessage.objects.send("+919876500001", "Your appointment is at 10", send_at=at)
    assert (message.status, message.status_reason) == (status.PENDING, scheduling.SCHEDULED)
    assert message.send_at == at and message.deferred_until == at
    assert enqueued == []  # nothing waits on the broker for an hour

    clock.advance(minutes=59)
    tasks.release_due()
    sending.deliver_message(message.pk)  # a stray run claims nothing before its time
    assert enqueued == [] and sent_to(sandbox) == []

    clock.advance(minutes=1)
    tasks.release_due()
    assert enqueued == [("send_message", message.pk, None)]
    run(enqueued)
    assert sent_to(sandbox) == ["+919876500001"]
    message.refresh_from_db()
    assert message.status == status.QUEUED and message.status_reason == ""
    tasks.release_due()
    assert enqueued == []  # released once


def test_reconcile_releases_due_scheduled_work_without_the_beat_entry(
    sandbox, clock, enqueued
) -> None:
    batch = SmsMessage.objects.send_bulk(
        to=numbers(3), body="Sale starts now", send_at=clock.now + timedelta(minutes=5)
    )
    assert enqueued == []
    assert reconcile.run().batches_to_resume == frozenset()
    clock.advance(minutes=5)
    report = reconcile.run()
    assert report.batches_to_resume == {batch.pk} and report.released == 1
    sending.deliver_batch(batch.pk)
    assert sorted(sent_to(sandbox)) == numbers(3)


def test_a_task_never_waits_for_a_scheduled_row_in_a_countdown(clock, enqueued) -> None:
    batch = SmsMessage.objects.send_bulk(
        to=numbers(2), body="Tomorrow", send_at=clock.now + timedelta(days=1)
    )
    tasks.send_batch.run(batch.pk)  # e.g. a run left over from before it was scheduled
    message = SmsMessage.objects.send(
        "+919876500009", "Later", send_at=clock.now + timedelta(hours=2)
    )
    tasks.send_message.run(message.pk)
    assert enqueued == []  # no self-rescheduling countdown of a day or two hours


def test_a_retry_backoff_still_comes_back_by_countdown(clock, enqueued, settings) -> None:
    message = SmsMessage.objects.send("+919876500010", "Retry me")
    run(enqueued)
    SmsMessage.objects.filter(pk=message.pk).update(
        status=status.PENDING, next_attempt_at=clock.now + timedelta(seconds=1.5)
    )
    tasks.send_message.run(message.pk)
    assert enqueued == [("send_message", message.pk, 1.5)]


def test_send_at_and_expiry_are_validated_before_anything_is_saved(clock) -> None:
    with pytest.raises(SmsValidationError) as naive:
        SmsMessage.objects.send("+919876500002", "x", send_at=datetime(2026, 3, 3, 9, 0))
    assert "aware" in naive.value.message_dict["send_at"][0]
    with pytest.raises(SmsValidationError) as early:
        SmsMessage.objects.send(
            "+919876500002",
            "x",
            send_at=clock.now + timedelta(hours=2),
            expires_at=clock.now + timedelta(hours=1),
        )
    assert "expire" in early.value.message_dict["expires_at"][0]
    with pytest.raises(SmsValidationError) as bad:
        SmsMessage.objects.send_bulk(to=numbers(2), body="x", valid_for=-5)
    assert "valid_for" in bad.value.message_dict
    assert SmsMessage.objects.count() == 0 and SmsBatch.objects.count() == 0


def test_a_send_at_already_past_sends_at_once(clock, enqueued) -> None:
    message = SmsMessage.objects.send(
        "+919876500003", "x", send_at=clock.now - timedelta(minutes=1)
    )
    assert message.send_at is None and message.next_attempt_at is None
    assert enqueued == [("send_message", message.pk, None)]


# -- expiry ------------------------------------------------------------------------------


def test_expiry_defaults_template_then_sms_type_explicit_wins(clock, settings) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "VALID_FOR": {"transactional": 3600}}
    otp = SmsTemplate.objects.create(
        name="otp", body="Your OTP is {#var#}", valid_for=timedelta(minutes=10)
    )
    now = clock.now
    from_template = otp.send("+919876500004", ["1234"], send_async=False)
    assert from_template.expires_at == now + timedelta(minutes=10)
    from_type = SmsMessage.objects.send("+919876500005", "hi", send_async=False)
    assert from_type.expires_at == now + timedelta(hours=1)
    explicit = otp.send("+919876500006", ["1"], valid_for=timedelta(minutes=2), send_async=False)
    assert explicit.expires_at == now + timedelta(minutes=2)
    at = now + timedelta(minutes=30)
    scheduled = SmsMessage.objects.send("+919876500007", "hi", send_at=at, valid_for=60)
    assert scheduled.expires_at == at + timedelta(seconds=60)  # counted from send_at
    promo = SmsMessage.objects.send(
        "+919876500008", "hi", sms_type="promotional", sender=PROMO_SENDER
    )
    assert promo.expires_at is None  # no default for promotional: never expires


def test_expired_messages_never_reach_exotel_and_signal_once(
    sandbox, clock, enqueued, status_signals
) -> None:
    batch = SmsMessage.objects.send_bulk(to=numbers(5), body="Your OTP is 1234", valid_for=60)
    single = SmsMessage.objects.send("+919876500011", "Your OTP is 9", valid_for=60)
    clock.advance(seconds=61)  # a backlog: the workers come too late
    run(enqueued)
    assert sent_to(sandbox) == []
    pks = [*batch.messages.values_list("pk", flat=True), single.pk]
    statuses = set(SmsMessage.objects.filter(pk__in=pks).values_list("status", flat=True))
    assert statuses == {status.EXPIRED}
    assert sorted(status_signals) == sorted(("changed", pk, status.EXPIRED) for pk in pks)
    reconcile.run()  # closing again changes nothing and signals nothing
    assert len(status_signals) == len(pks)
    assert StatusEvent.objects.filter(status=status.EXPIRED).count() == len(pks)


def _stale_backlog(n: int, clock: Clock) -> None:
    SmsMessage.objects.bulk_create(
        SmsMessage(to=f"+9198765{i:05d}", body="OTP", expires_at=clock.now - timedelta(seconds=1))
        for i in range(n)
    )


@pytest.mark.parametrize("backlog", [150, 1500])
def test_a_stale_backlog_expires_in_a_few_queries(clock, backlog) -> None:
    _stale_backlog(backlog, clock)
    with CaptureQueriesContext(connection) as ctx:
        expired = gate.expire_all(clock.now)
    assert expired == backlog
    # No query per message: the history rows go in bulk INSERTs (SQLite caps one at
    # ~110 rows), everything else is a constant handful.
    others = [q for q in ctx.captured_queries if not q["sql"].startswith("INSERT")]
    assert len(others) <= 8, [q["sql"][:80] for q in others]
    inserts = len(ctx.captured_queries) - len(others)
    assert inserts <= 1 + backlog // 100
    assert SmsMessage.objects.filter(status=status.EXPIRED).count() == backlog


# -- windows -----------------------------------------------------------------------------


def test_a_promotional_batch_stops_at_the_close_and_completes_after_the_opening(
    sandbox, clock, enqueued, monkeypatch
) -> None:
    """In-process, each claim taking two simulated minutes; the same on a real worker with
    its beat: tests/test_celery_worker.py (same test name)."""
    clock.set(datetime(2026, 3, 2, 20, 50, tzinfo=IST))  # 10 minutes before the close
    real_claim = sending._claim

    def slow_claim(base: Any, limit: int) -> Any:
        claim = real_claim(base, limit)
        clock.advance(minutes=2)  # each chunk of 100 takes two (simulated) minutes
        return claim

    monkeypatch.setattr(sending, "_claim", slow_claim)
    recipients = numbers(1000)
    batch = SmsMessage.objects.send_bulk(
        to=recipients, body="50% off", sms_type="promotional", sender=PROMO_SENDER
    )
    run(enqueued)  # the batch's runs: the first does the work, the second finds it closed
    assert clock.now >= datetime(2026, 3, 2, 21, 0, tzinfo=IST)
    before_close = sent_to(sandbox)
    assert len(before_close) == 500  # chunks claimed at 20:50, :52, :54, :56 and :58

    waiting = batch.messages.filter(status=status.PENDING)
    opening = datetime(2026, 3, 3, 10, 0, tzinfo=IST)
    assert waiting.count() == 500
    assert set(waiting.values_list("status_reason", "next_attempt_at")) == {
        (scheduling.WINDOW, opening)
    }
    assert enqueued == []  # the night is spent in the database, not in a countdown

    clock.set(opening - timedelta(seconds=1))
    tasks.release_due()
    run(enqueued)
    assert len(sent_to(sandbox)) == 500  # nothing leaves during the night

    clock.set(opening)
    tasks.release_due()
    assert [name for name, *_ in enqueued] == ["send_batch", "send_batch"]
    run(enqueued)
    assert sorted(sent_to(sandbox)) == recipients  # every number, each once
    assert batch.messages.exclude(status=status.QUEUED).count() == 0


def test_a_promotional_message_outside_the_window_is_deferred_visibly(clock, enqueued) -> None:
    clock.set(datetime(2026, 3, 2, 22, 15, tzinfo=IST))
    promo = SmsMessage.objects.send(
        "+919876500020", "Sale", sms_type="promotional", sender=PROMO_SENDER
    )
    opening = datetime(2026, 3, 3, 10, 0, tzinfo=IST)
    assert (promo.status_reason, promo.deferred_until) == (scheduling.WINDOW, opening)
    abroad = SmsMessage.objects.send(
        "+447911123456", "Sale", sms_type="promotional", sender=PROMO_SENDER
    )
    otp = SmsMessage.objects.send("+919876500021", "Your OTP is 12")
    assert abroad.next_attempt_at is None and otp.next_attempt_at is None  # not governed
    assert sorted(pk for _, pk, _ in enqueued) == sorted([abroad.pk, otp.pk])
    # Scheduled inside the night: deferred to the opening, the later of the two.
    late = SmsMessage.objects.send(
        "+919876500022",
        "Sale",
        sms_type="promotional",
        sender=PROMO_SENDER,
        send_at=clock.now + timedelta(hours=1),
    )
    assert (late.status_reason, late.next_attempt_at) == (scheduling.WINDOW, opening)


def test_transactional_windows_apply_only_when_configured(clock, enqueued, settings) -> None:
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "SENDING_WINDOWS": [
            {
                "sms_types": ["transactional"],
                "regions": ["*"],
                "start": "22:00",
                "end": "06:00",
                "timezone": "Asia/Kolkata",
            }
        ],
    }
    clock.set(datetime(2026, 3, 2, 12, 0, tzinfo=IST))
    held = SmsMessage.objects.send("+919876500030", "Quiet hours only")
    assert held.deferred_until == datetime(2026, 3, 2, 22, 0, tzinfo=IST)
    clock.set(datetime(2026, 3, 3, 5, 59, tzinfo=IST))  # overnight window still open
    assert SmsMessage.objects.send("+919876500031", "now").next_attempt_at is None


@pytest.mark.parametrize(
    ("local", "is_open", "opening"),
    [
        ((9, 59), False, (2, 10, 0)),
        ((10, 0), True, (2, 10, 0)),  # opening "at or after now"
        ((20, 59), True, (3, 10, 0)),
        ((21, 0), False, (3, 10, 0)),
    ],
)
def test_window_opening_arithmetic(local, is_open, opening) -> None:
    window = scheduling.parse_windows(
        [
            {
                "sms_types": ["promotional"],
                "regions": ["IN"],
                "start": "10:00",
                "end": "21:00",
                "timezone": "Asia/Kolkata",
            }
        ]
    )[0]
    now = datetime(2026, 3, 2, *local, tzinfo=IST).astimezone(UTC)
    assert window.is_open(now) is is_open
    day, hour, minute = opening
    assert window.next_opening(now) == datetime(2026, 3, day, hour, minute, tzinfo=IST)
    assert window.governs("promotional", "+919876500000")
    assert not window.governs("promotional", "+14155550100")
    assert not window.governs("", "+919876500000")


# -- cancellation ------------------------------------------------------------------------


def test_cancel_message_batch_and_queryset(sandbox, clock, enqueued, status_signals) -> None:
    later = clock.now + timedelta(hours=1)
    message = SmsMessage.objects.send("+919876500040", "x", send_at=later)
    assert message.cancel() is True
    assert (message.status, message.status_reason) == (status.CANCELLED, "cancelled")
    assert message.cancel() is False

    batch = SmsMessage.objects.send_bulk(to=numbers(6), body="x", send_at=later)
    rows = list(batch.messages.order_by("pk"))
    # One row already claimed by a worker, one already handed to Exotel and answered.
    SmsMessage.objects.filter(pk=rows[0].pk).update(status=status.SUBMITTING)
    SmsMessage.objects.filter(pk=rows[1].pk).update(status=status.SENT)
    result = batch.cancel()
    assert result.as_dict() == {"cancelled": 4, "on_their_way": 1, "already_final": 1}

    clock.advance(hours=2)
    tasks.release_due()
    run(enqueued)
    assert sent_to(sandbox) == []
    cancelled = [("changed", r.pk, status.CANCELLED) for r in rows[2:]]
    assert sorted(status_signals) == sorted([("changed", message.pk, "cancelled"), *cancelled])
    other = SmsMessage.objects.send("+919876500041", "x", send_at=later + timedelta(hours=5))
    assert SmsMessage.objects.filter(to="+919876500041").cancel().cancelled == 1
    other.refresh_from_db()
    assert other.status == status.CANCELLED


def test_cancel_signals_only_after_commit(clock, enqueued, status_signals) -> None:
    from django.db import transaction

    message = SmsMessage.objects.send("+919876500045", "x", send_at=clock.now + timedelta(1))
    with pytest.raises(RuntimeError), transaction.atomic():
        assert message.cancel() is True
        assert status_signals == []  # not yet: the transaction may still roll back
        raise RuntimeError
    assert status_signals == []
    message.refresh_from_db()
    assert message.status == status.PENDING
    with transaction.atomic():
        message.cancel()
        assert status_signals == []
    assert status_signals == [("changed", message.pk, status.CANCELLED)]  # no sms_failed


@needs_row_locks
def test_cancel_racing_a_claim_never_both_cancels_and_sends(sandbox, enqueued, monkeypatch) -> None:
    """The worker's claim holds its first chunk's row locks while the batch is cancelled."""
    recipients = numbers(1000, start=700_000)
    batch = SmsMessage.objects.send_bulk(to=recipients, body="Flash sale")
    locked = threading.Event()
    real_f = sending.F

    def f_pausing_inside_the_claim(name: str) -> Any:
        # F("attempts") is built after the claim locked its rows and before it moves them.
        if not locked.is_set():
            locked.set()
            time.sleep(0.5)
        return real_f(name)

    monkeypatch.setattr(sending, "F", f_pausing_inside_the_claim)
    real_claim = sending.claim_sql.claim_returning

    def claim_holding_its_locks(*args: Any, **kwargs: Any) -> Any:
        # PostgreSQL claims in one statement: hold its locks as a slow commit would.
        with transaction.atomic():
            rows = real_claim(*args, **kwargs)
            if not locked.is_set():
                locked.set()
                time.sleep(0.5)
        return rows

    monkeypatch.setattr(sending.claim_sql, "claim_returning", claim_holding_its_locks)
    results: list[cancellation.CancelResult] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            sending.deliver_batch(batch.pk)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def canceller() -> None:
        try:
            assert locked.wait(10)
            results.append(batch.cancel())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker), threading.Thread(target=canceller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = dict(batch.messages.values_list("to", "status"))
    cancelled = {to for to, s in final.items() if s == status.CANCELLED}
    sent = sent_to(sandbox)
    assert not cancelled & set(sent)  # never both
    assert sorted(sent) == recipients[:100]  # the claimed chunk leaves, once
    assert len(cancelled) == 900
    (result,) = results
    assert result.cancelled == 900 and result.on_their_way + result.already_final == 100


# -- surfaces: REST API ------------------------------------------------------------------


@pytest.fixture
def api_as(django_user_model):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    def make(*codenames: str) -> APIClient:
        user = django_user_model.objects.create_user(username=f"u{len(codenames)}")
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="django_exotel_sms", codename__in=codenames
            )
        )
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


def test_api_schedules_shows_deferral_and_cancels(clock, enqueued, api_as) -> None:
    api = api_as("add_smsmessage", "view_smsmessage", "change_smsmessage", "view_smsbatch")
    at = clock.now + timedelta(hours=3)
    created = api.post(
        "/api/sms/messages/",
        {"to": "+919876500050", "body": "Reminder", "send_at": at.isoformat(), "valid_for": 600},
        format="json",
    )
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["status"] == "pending" and data["status_reason"] == "scheduled"
    assert datetime.fromisoformat(data["deferred_until"]) == at
    assert datetime.fromisoformat(data["expires_at"]) == at + timedelta(seconds=600)
    assert enqueued == []

    bulk = api.post(
        "/api/sms/messages/bulk/",
        {
            "to": numbers(3),
            "body": "Sale",
            "sms_type": "promotional",
            "sender": PROMO_SENDER,
            "send_at": at.isoformat(),
        },
        format="json",
    )
    assert bulk.status_code == 201, bulk.content
    batch_id = bulk.json()["id"]
    one = SmsMessage.objects.filter(batch_id=batch_id).order_by("pk").first()
    assert one is not None
    SmsMessage.objects.filter(pk=one.pk).update(status=status.SUBMITTING)  # a worker has it

    answer = api.post(f"/api/sms/batches/{batch_id}/cancel/")
    assert answer.status_code == 200
    assert answer.json() == {"cancelled": 2, "on_their_way": 1, "already_final": 0}
    single = api.post(f"/api/sms/messages/{data['id']}/cancel/")
    assert single.json() == {"cancelled": 1, "on_their_way": 0, "already_final": 0}
    again = api.post(f"/api/sms/messages/{data['id']}/cancel/")
    assert again.json() == {"cancelled": 0, "on_their_way": 0, "already_final": 1}
    assert api.get(f"/api/sms/messages/{data['id']}/").json()["status"] == "cancelled"

    bad = api.post(
        "/api/sms/messages/",
        {"to": "+919876500051", "body": "x", "expires_at": (clock.now - timedelta(1)).isoformat()},
        format="json",
    )
    assert bad.status_code == 400 and "expires_at" in bad.json()

    reader = api_as("view_smsmessage", "view_smsbatch")
    assert reader.post(f"/api/sms/batches/{batch_id}/cancel/").status_code == 403


# -- surfaces: admin ---------------------------------------------------------------------


def test_admin_shows_deferral_and_cancels_after_confirmation(clock, enqueued, admin_client) -> None:
    clock.set(datetime(2026, 3, 2, 22, 0, tzinfo=IST))
    promo = SmsMessage.objects.send(
        "+919876500060", "Sale", sms_type="promotional", sender=PROMO_SENDER
    )
    changelist = "/admin/django_exotel_sms/smsmessage/"
    page = admin_client.get(changelist).content.decode()
    assert "deferred until 2026-03-03" in page and "sending window" in page

    ask = admin_client.post(
        changelist, {"action": "cancel_messages", "_selected_action": [promo.pk], "index": "0"}
    )
    assert ask.status_code == 200 and 'name="post" value="yes"' in ask.content.decode()
    promo.refresh_from_db()
    assert promo.status == status.PENDING  # only the confirmation cancels
    done = admin_client.post(
        changelist,
        {"action": "cancel_messages", "_selected_action": [promo.pk], "post": "yes"},
        follow=True,
    )
    assert "Cancelled 1 message" in done.content.decode()
    promo.refresh_from_db()
    assert promo.status == status.CANCELLED

    batch = SmsMessage.objects.send_bulk(
        to=numbers(4), body="Sale", sms_type="promotional", sender=PROMO_SENDER
    )
    first = batch.messages.order_by("pk").first()
    assert first is not None
    SmsMessage.objects.filter(pk=first.pk).update(status=status.SUBMITTING)
    batches = "/admin/django_exotel_sms/smsbatch/"
    ask = admin_client.post(
        batches, {"action": "cancel_batches", "_selected_action": [batch.pk], "index": "0"}
    )
    assert ask.status_code == 200 and "Not sent yet" in ask.content.decode()
    assert batch.messages.filter(status=status.PENDING).count() == 3
    done = admin_client.post(
        batches,
        {"action": "cancel_batches", "_selected_action": [batch.pk], "post": "yes"},
        follow=True,
    )
    text = done.content.decode()
    assert "Cancelled 3 messages" in text and "1 already on their way" in text
    assert batch.messages.filter(status=status.CANCELLED).count() == 3


# -- surfaces: exotel_send / exotel_reconcile --------------------------------------------


def test_exotel_send_schedules_and_reconcile_releases(sandbox, clock, enqueued) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command(
        "exotel_send",
        "--to", "+919876500070", "--body", "Reminder", "--valid-for", "3600",
        "--send-at", "2026-03-02T13:00:00+05:30",
        stdout=out,
    )  # fmt: skip
    assert "deferred until 2026-03-02T13:00:00+05:30 (scheduled)" in out.getvalue()
    message = SmsMessage.objects.get(to="+919876500070")
    assert message.expires_at == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    with pytest.raises(CommandError, match="offset"):
        call_command("exotel_send", "--to", "+919876500071", "--body", "x",
                     "--send-at", "2026-03-02T13:00")  # fmt: skip

    clock.set(datetime(2026, 3, 2, 7, 30, tzinfo=UTC))
    report = StringIO()
    call_command("exotel_reconcile", "--sync", stdout=report)
    assert "Scheduled or deferred work now due:" in report.getvalue()
    assert sent_to(sandbox) == ["+919876500070"]


# -- configuration -----------------------------------------------------------------------


def test_system_checks_name_the_wrong_scheduling_setting(settings) -> None:
    from django_exotel_sms.checks import check_scheduling

    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "SENDING_WINDOWS": [{"sms_types": ["promo"], "start": "10:00", "end": "21:00"}],
        "VALID_FOR": {"transactional": -1},
        "RELEASE_INTERVAL": 0,
    }
    settings.CELERY_BEAT_SCHEDULE = {
        "reconcile": {"task": "django_exotel_sms.tasks.reconcile", "schedule": 300}
    }
    found = {m.id: m.msg for m in check_scheduling()}
    assert set(found) == {
        "django_exotel_sms.E050",
        "django_exotel_sms.E051",
        "django_exotel_sms.E052",
        "django_exotel_sms.W050",
    }
    assert "['SENDING_WINDOWS'][0]['sms_types']" in found["django_exotel_sms.E050"]
    assert "['VALID_FOR']['transactional']" in found["django_exotel_sms.E051"]
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "SENDING_WINDOWS": [], "VALID_FOR": {},
                           "RELEASE_INTERVAL": 5}  # fmt: skip
    settings.CELERY_BEAT_SCHEDULE = {
        "release": {"task": "django_exotel_sms.tasks.release_due", "schedule": 5}
    }
    assert check_scheduling() == []


def test_admin_test_send_takes_send_at_and_expires_at(clock, enqueued, admin_client) -> None:
    tpl = SmsTemplate.objects.create(name="reminder", body="See you at {#var#}")
    at = clock.now + timedelta(hours=2)
    response = admin_client.post(
        f"/admin/django_exotel_sms/smstemplate/{tpl.pk}/test-send/",
        {
            "to": "+919876500080",
            "var1": "10",
            "send_at": at.strftime("%Y-%m-%d %H:%M:%S"),  # read in TIME_ZONE (UTC here)
            "expires_at": (at + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S"),
        },
        follow=True,
    )
    assert "deferred until" in response.content.decode()
    message = SmsMessage.objects.get(to="+919876500080")
    assert (message.send_at, message.expires_at) == (at, at + timedelta(minutes=30))
    assert enqueued == []
