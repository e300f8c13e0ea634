"""apply_report's two paths -- one statement on PostgreSQL, the portable ORM one -- agree.

Each scenario runs on both paths (the one-statement path only where the database is
PostgreSQL) and compares what they leave behind: the message, its history, the signals
and the suppression list.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from django_exotel_sms import status, tracking
from django_exotel_sms.db import apply_pg
from django_exotel_sms.models import SmsMessage, StatusEvent, Suppression
from django_exotel_sms.signals import sms_delivered, sms_failed, sms_status_changed
from django_exotel_sms.tracking import StatusReport, apply_report

pytestmark = pytest.mark.django_db

PATHS = ["one-statement", "portable"]
SENT_AT = datetime(2026, 1, 15, 5, 0, tzinfo=dt_timezone.utc)
DELIVERED = StatusReport(
    status=status.SENT,
    detailed_status_code=20005,
    detailed_status="DELIVERED_TO_HANDSET",
    sms_units=1,
    price=Decimal("0.180000"),
    date_sent=SENT_AT,
    payload={"SmsSid": "sid-1", "Status": "sent"},
)
LATE_SUBMITTED = StatusReport(status=status.SUBMITTED, detailed_status_code=21020)
DND = StatusReport(status=status.FAILED_DND, detailed_status_code=23005)


@pytest.fixture(params=PATHS)
def path(request, monkeypatch) -> str:
    """Which path apply_report takes; the one-statement path needs PostgreSQL."""
    if request.param == "one-statement":
        if connection.vendor != "postgresql":
            pytest.skip("the one-statement path is PostgreSQL's")
        # Fails the test if the portable path were taken instead.
        monkeypatch.setattr(tracking, "_apply_portable", _must_not_run)
    else:
        monkeypatch.setattr(apply_pg, "supported", lambda using: False)
    return str(request.param)


def _must_not_run(*args: Any, **kwargs: Any) -> bool:
    raise AssertionError("the portable path ran where one statement should")


class Signals:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str, str | None, str, int | None]] = []

    def receiver(self, name: str) -> Any:
        def receive(sender: Any, message: SmsMessage, **kwargs: Any) -> None:
            self.calls.append(
                (
                    name,
                    message.pk,
                    kwargs["previous_status"],
                    kwargs.get("new_status"),
                    message.status,  # the instance the receiver gets is the updated row
                    message.detailed_status_code,
                )
            )

        return receive


@pytest.fixture
def signals() -> Any:
    recorder = Signals()
    connected = [
        (sms_status_changed, recorder.receiver("changed")),
        (sms_delivered, recorder.receiver("delivered")),
        (sms_failed, recorder.receiver("failed")),
    ]
    for signal, receiver in connected:
        signal.connect(receiver, weak=False)
    yield recorder
    for signal, receiver in connected:
        signal.disconnect(receiver)


def _message(**fields: Any) -> SmsMessage:
    values = {
        "to": "+919876543210",
        "body": "Your OTP is 1234",
        "sender": "EXOTEL",
        "sid": "sid-1",
        "status": status.QUEUED,
        **fields,
    }
    return SmsMessage.objects.create(**values)


def _state(message: SmsMessage) -> dict[str, Any]:
    """What a report leaves behind, without pks and timestamps."""
    row = SmsMessage.objects.values(
        "status",
        "detailed_status_code",
        "detailed_status",
        "sms_units",
        "price",
        "sent_at",
        "error_code",
        "error_message",
        "sid",
    ).get(pk=message.pk)
    events = list(
        StatusEvent.objects.filter(message=message)
        .order_by("pk")
        .values_list(
            "status", "detailed_status_code", "detailed_status", "source", "applied", "note"
        )
    )
    return {"message": row, "events": events}


def _run(path: str, reports: list[StatusReport], on_commit: Any, **fields: Any) -> dict[str, Any]:
    message = _message(**fields)
    results = []
    for report in reports:
        with on_commit(execute=True):
            results.append(apply_report(message.pk, report, StatusEvent.SOURCE_CALLBACK))
    return {"results": results, **_state(message)}


EXPECTED_DELIVERED = {
    "status": status.SENT,
    "detailed_status_code": 20005,
    "detailed_status": "DELIVERED_TO_HANDSET",
    "sms_units": 1,
    "price": Decimal("0.180000"),
    "sent_at": SENT_AT,
    "error_code": None,
    "error_message": "",
    "sid": "sid-1",
}


def test_a_forward_report_moves_the_message_and_writes_history(
    path, signals, django_capture_on_commit_callbacks
):
    out = _run(
        path,
        [DELIVERED],
        django_capture_on_commit_callbacks,
        error_code=1,
        error_message="may have accepted it",
    )
    assert out["results"] == [True]
    assert out["message"] == EXPECTED_DELIVERED
    assert out["events"] == [
        (status.SENT, 20005, "DELIVERED_TO_HANDSET", StatusEvent.SOURCE_CALLBACK, True, "")
    ]
    event = StatusEvent.objects.get()
    assert event.payload == {"SmsSid": "sid-1", "Status": "sent"}
    assert event.created_at is not None
    pk = SmsMessage.objects.get().pk
    assert signals.calls == [
        ("changed", pk, status.QUEUED, status.SENT, status.SENT, 20005),
        ("delivered", pk, status.QUEUED, None, status.SENT, 20005),
    ]


def test_a_duplicate_report_is_history_only_and_signals_once(
    path, signals, django_capture_on_commit_callbacks
):
    out = _run(path, [DELIVERED, DELIVERED], django_capture_on_commit_callbacks)
    assert out["results"] == [True, False]
    assert out["message"] == EXPECTED_DELIVERED
    assert out["events"][1] == (
        status.SENT,
        20005,
        "DELIVERED_TO_HANDSET",
        StatusEvent.SOURCE_CALLBACK,
        False,
        "not applied: message was already sent",
    )
    assert [c[0] for c in signals.calls] == ["changed", "delivered"]


def test_a_late_report_never_moves_the_status_back(
    path, signals, django_capture_on_commit_callbacks
):
    out = _run(path, [DELIVERED, LATE_SUBMITTED], django_capture_on_commit_callbacks)
    assert out["results"] == [True, False]
    assert out["message"]["status"] == status.SENT
    assert out["message"]["detailed_status_code"] == 20005
    assert out["events"][1][4:] == (False, "not applied: message was already sent")
    assert [c[0] for c in signals.calls] == ["changed", "delivered"]


def test_missing_facts_keep_what_the_row_has(path, django_capture_on_commit_callbacks):
    out = _run(
        path,
        [StatusReport(status=status.SUBMITTED, detailed_status_code=21020)],
        django_capture_on_commit_callbacks,
        sms_units=2,
        price=Decimal("0.5"),
        sent_at=SENT_AT,
    )
    assert out["results"] == [True]
    assert out["message"]["sms_units"] == 2
    assert out["message"]["price"] == Decimal("0.5")
    assert out["message"]["sent_at"] == SENT_AT
    assert out["events"][0][5] == ""
    assert StatusEvent.objects.get().payload is None


def test_a_report_for_no_message_writes_nothing(path, signals):
    assert apply_report(987654, DELIVERED, StatusEvent.SOURCE_CALLBACK) is False
    assert not StatusEvent.objects.exists()
    assert signals.calls == []


def test_a_failure_code_feeds_the_suppression_list(
    path, signals, django_capture_on_commit_callbacks
):
    out = _run(path, [DND, DND], django_capture_on_commit_callbacks)
    assert out["results"] == [True, False]
    assert out["message"]["status"] == status.FAILED_DND
    assert list(Suppression.objects.values_list("number", "reason")) == [("+919876543210", "dnd")]
    assert [c[0] for c in signals.calls] == ["changed", "failed"]


def test_both_paths_leave_the_same_state(monkeypatch, django_capture_on_commit_callbacks):
    """The same sequence of reports, once per path: identical outcome."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    sequence = [
        StatusReport(status=status.SENDING, detailed_status_code=21015),
        LATE_SUBMITTED,
        StatusReport(status=status.QUEUED),  # behind: not applied
        DELIVERED,
        DELIVERED,
        DND,  # after a terminal status: not applied
    ]
    one = _run("one-statement", sequence, django_capture_on_commit_callbacks, sid="sid-a")
    monkeypatch.setattr(apply_pg, "supported", lambda using: False)
    portable = _run("portable", sequence, django_capture_on_commit_callbacks, sid="sid-b")
    portable["message"]["sid"] = one["message"]["sid"]
    assert one == portable
    assert one["results"] == [True, True, False, True, False, False]


# -- the view's one statement on PostgreSQL: find by Sid, check the scope, record -------------


def _scope(kind: str, pk: int, created_at: datetime) -> Any:
    from django_exotel_sms import callbacks

    return callbacks.read_token(callbacks.make_token(kind, pk, created_at))


@pytest.fixture
def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")


def test_by_sid_records_within_the_token_scope_only(
    postgres_only, signals, django_capture_on_commit_callbacks
):
    from django_exotel_sms import callbacks
    from django_exotel_sms.models import SmsBatch

    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, name="b", total=1)
    other = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, name="o", total=1)
    message = _message(batch=batch)
    source = StatusEvent.SOURCE_CALLBACK
    # Another batch's token, a message token for this row's pk but another creation time,
    # an unknown Sid: nothing written.
    assert (
        tracking.apply_by_sid(
            _scope(callbacks.BATCH, other.pk, other.created_at), "sid-1", DELIVERED, source
        )
        == tracking.OUT_OF_SCOPE
    )
    assert (
        tracking.apply_by_sid(
            _scope(callbacks.MESSAGE, message.pk, batch.created_at), "sid-1", DELIVERED, source
        )
        == tracking.OUT_OF_SCOPE
    )
    scope = _scope(callbacks.BATCH, batch.pk, batch.created_at)
    assert tracking.apply_by_sid(scope, "sid-unknown", DELIVERED, source) is None
    assert not StatusEvent.objects.exists() and signals.calls == []
    # The batch's token: recorded once, then a duplicate is history only.
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            assert tracking.apply_by_sid(scope, "sid-1", DELIVERED, source) == tracking.RECORDED
    assert _state(message)["message"] == EXPECTED_DELIVERED
    assert [e[4] for e in _state(message)["events"]] == [True, False]
    assert [c[0] for c in signals.calls] == ["changed", "delivered"]


def test_a_callback_is_one_query_on_postgresql(
    postgres_only, client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    from django_exotel_sms import callbacks

    message = _message(batch=None)
    token = callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)
    form = {"SmsSid": "sid-1", "Status": "sent", "DetailedStatusCode": "20005"}
    with django_assert_num_queries(1), django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("django_exotel_sms:status-callback", args=[token]), form)
    assert response.status_code == 200
    assert SmsMessage.objects.get().status == status.SENT
