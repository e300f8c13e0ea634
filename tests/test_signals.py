"""Signals: one per forward change, terminal ones once, after commit, whatever the source."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction
from django.urls import reverse

from django_exotel_sms import callbacks, reconcile, status
from django_exotel_sms.backends import locmem
from django_exotel_sms.backends.locmem import LocmemBackend, OutboxEntry
from django_exotel_sms.client import BulkResult, SmsResult
from django_exotel_sms.models import SmsMessage, StatusEvent
from django_exotel_sms.signals import sms_delivered, sms_failed, sms_status_changed
from django_exotel_sms.tracking import StatusReport, apply_report

pytestmark = pytest.mark.django_db

GOOD = ["+919876543210", "+919876543211"]
BAD = "+919876543219"


class Recorder:
    """Connects to the three signals; keeps what each receiver was given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def _receiver(self, name: str):
        def receive(sender, **kwargs):
            message = kwargs["message"]
            conn = transaction.get_connection()
            self.calls.append(
                {
                    "signal": name,
                    "sender": sender,
                    "pk": message.pk,
                    "message_status": message.status,
                    "stored_status": SmsMessage.objects.get(pk=message.pk).status,
                    "previous": kwargs["previous_status"],
                    "new": kwargs.get("new_status"),
                    "source": kwargs.get("source"),
                    "to_handset": kwargs.get("to_handset"),
                    "in_atomic": conn.in_atomic_block,
                }
            )

        return receive

    def connect(self) -> None:
        self._receivers = {
            sms_status_changed: self._receiver("changed"),
            sms_delivered: self._receiver("delivered"),
            sms_failed: self._receiver("failed"),
        }
        for signal, receiver in self._receivers.items():
            signal.connect(receiver, weak=False)

    def disconnect(self) -> None:
        for signal, receiver in self._receivers.items():
            signal.disconnect(receiver)

    def names(self, pk: int | None = None) -> list[str]:
        return [c["signal"] for c in self.calls if pk is None or c["pk"] == pk]

    def moves(self, signal: str = "changed") -> list[tuple[object, ...]]:
        return [
            (c["pk"], c["previous"], c["new"], c["source"])
            for c in self.calls
            if c["signal"] == signal
        ]


@pytest.fixture
def recorder():
    rec = Recorder()
    rec.connect()
    yield rec
    rec.disconnect()


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


def make_message(sid: str | None = "sid-a", st: str = status.QUEUED, **fields) -> SmsMessage:
    values = {"to": GOOD[0], "body": "Your OTP is 1234", "sender": "EXOTEL", **fields}
    return SmsMessage.objects.create(sid=sid, status=st, **values)


def post_status(client, message: SmsMessage, word: str, code: str = "") -> int:
    token = callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)
    form = {"SmsSid": message.sid, "Status": word, "DetailedStatusCode": code}
    path = reverse("django_exotel_sms:status-callback", args=[token])
    return client.post(path, form).status_code


def rejected_result(number: str) -> SmsResult:
    """A 207 entry Exotel refused: no Sid, status failed, 23010."""
    return SmsResult(
        sid=None,
        to=None,
        sender=None,
        status="failed",
        detailed_status_code=23010,
        detailed_status="FAILED_INVALID_DESTINATION_NUMBER",
        sms_units=None,
        price=None,
        date_created=None,
        date_updated=None,
        date_sent=None,
        body="Sale today",
        direction="outbound-api",
        account_sid="sandbox",
        uri=None,
    )


# -- from the API response ------------------------------------------------------------


def test_api_acceptance_is_a_forward_change_without_terminal_signals(recorder, on_commit):
    with on_commit():
        message = SmsMessage.objects.send(GOOD[0], "Your OTP is 1234", send_async=False)
    assert recorder.moves() == [(message.pk, status.SUBMITTING, status.QUEUED, "api")]
    assert recorder.names() == ["changed"]
    call = recorder.calls[0]
    assert call["sender"] is SmsMessage
    assert call["message_status"] == call["stored_status"] == status.QUEUED


def test_rejected_entries_of_a_207_fire_sms_failed_once(recorder, on_commit, monkeypatch):
    def send_bulk(self, to, body, sender, **options):
        results = tuple(
            rejected_result(n)
            if n == BAD
            else locmem._accepted(OutboxEntry(n, body, sender, dict(options)))
            for n in to
        )
        return BulkResult(http_status=207, results=results)

    monkeypatch.setattr(LocmemBackend, "send_bulk", send_bulk)
    with on_commit():
        batch = SmsMessage.objects.send_bulk(
            to=[GOOD[0], BAD, GOOD[1]], body="Sale today", send_async=False
        )
    rejected = batch.messages.get(to=BAD)
    assert rejected.status == status.REJECTED
    assert rejected.detailed_status_code == 23010
    assert recorder.moves("failed") == [(rejected.pk, status.SUBMITTING, None, None)]
    assert sorted(recorder.names()) == ["changed"] * 3 + ["failed"]
    # Exotel has no Sid for it, so nothing later can fail it again.
    assert recorder.names(rejected.pk) == ["changed", "failed"]


def test_single_send_rejected_by_the_api_fires_sms_failed(recorder, on_commit, monkeypatch):
    monkeypatch.setattr(
        LocmemBackend, "send", lambda self, to, body, sender, **o: rejected_result(to)
    )
    with on_commit():
        message = SmsMessage.objects.send(GOOD[0], "Your OTP is 1234", send_async=False)
    message.refresh_from_db()
    assert message.status == status.REJECTED
    assert recorder.names() == ["changed", "failed"]
    failed = recorder.calls[1]
    assert (failed["previous"], failed["message_status"]) == (status.SUBMITTING, status.REJECTED)


# -- from callbacks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "word, code, signal",
    [
        ("sent", "20005", "delivered"),
        ("failed", "23050", "failed"),
        ("failed-dnd", "23005", "failed"),
    ],
)
def test_terminal_callback_fires_once(client, recorder, on_commit, word, code, signal):
    message = make_message()
    with on_commit():
        codes = [post_status(client, message, word, code) for _ in range(3)]
        codes.append(post_status(client, message, "submitted", "21020"))
        codes.append(post_status(client, message, "failed" if word == "sent" else "sent"))
    assert codes == [200] * 5
    assert recorder.names() == ["changed", signal]
    terminal = recorder.calls[1]
    assert terminal["previous"] == status.QUEUED
    assert terminal["message_status"] == word
    assert recorder.moves() == [(message.pk, status.QUEUED, word, "callback")]
    assert message.events.filter(applied=True).count() == 1
    assert message.events.count() == 5


@pytest.mark.parametrize(
    "code, to_handset",
    [("20005", True), ("20006", False), ("", False)],
    ids=["handset", "operator-only", "no-code"],
)
def test_delivered_says_whether_the_handset_got_it(client, recorder, on_commit, code, to_handset):
    # 20006 DELIVERED_TO_OPERATOR is "sent" too, but no receipt came from the phone.
    message = make_message()
    with on_commit():
        assert post_status(client, message, "submitted", "21020") == 200
        assert post_status(client, message, "sent", code) == 200
    assert recorder.names() == ["changed", "changed", "delivered"]
    submitted, changed, delivered = recorder.calls
    assert submitted["to_handset"] is False
    assert changed["to_handset"] is to_handset and delivered["to_handset"] is to_handset


def test_each_forward_change_signals(client, recorder, on_commit):
    message = make_message()
    with on_commit():
        for word in ("sending", "submitted", "sent"):
            assert post_status(client, message, word) == 200
    assert recorder.moves() == [
        (message.pk, status.QUEUED, status.SENDING, "callback"),
        (message.pk, status.SENDING, status.SUBMITTED, "callback"),
        (message.pk, status.SUBMITTED, status.SENT, "callback"),
    ]
    assert recorder.names() == ["changed", "changed", "changed", "delivered"]


def test_nothing_fires_before_commit(client, recorder, django_capture_on_commit_callbacks):
    message = make_message()
    with django_capture_on_commit_callbacks(execute=False) as pending:
        assert post_status(client, message, "sent") == 200
    assert recorder.calls == []  # the status is stored, the signal waits for the commit
    assert len(pending) == 1
    pending[0]()
    assert recorder.names() == ["changed", "delivered"]


# -- from reconciliation --------------------------------------------------------------


def test_reconciliation_fires_delivered_once_and_callbacks_do_not_repeat_it(
    client, recorder, on_commit
):
    with on_commit():
        message = SmsMessage.objects.send(GOOD[0], "Your OTP is 1234", send_async=False)
    message.refresh_from_db()
    recorder.calls.clear()
    with on_commit():
        assert reconcile.refresh_message(message) is True  # locmem's details say sent
        assert reconcile.refresh_message(message) is False
        assert post_status(client, message, "sent", "20005") == 200
        assert post_status(client, message, "failed", "23050") == 200
    assert recorder.names() == ["changed", "delivered"]
    assert recorder.moves() == [(message.pk, status.QUEUED, status.SENT, "reconcile")]
    sources = list(message.events.values_list("source", "applied"))
    assert sources[-4:] == [
        ("reconcile", True),
        ("reconcile", False),
        ("callback", False),
        ("callback", False),
    ]


def test_reconciliation_keeps_an_unknown_status_word_out_of_the_message(
    recorder, on_commit, monkeypatch
):
    with on_commit():
        message = SmsMessage.objects.send(GOOD[0], "Your OTP is 1234", send_async=False)
    message.refresh_from_db()
    recorder.calls.clear()
    looked_up = rejected_result(GOOD[0])
    odd = type(looked_up)(**{**vars(looked_up), "sid": message.sid, "status": "delivered-ish"})
    monkeypatch.setattr(LocmemBackend, "get_message", lambda self, sid: odd)
    with on_commit():
        assert reconcile.refresh_message(message) is False
    message.refresh_from_db()
    assert message.status == status.QUEUED
    event = message.events.last()
    assert (event.status, event.applied, event.source) == ("delivered-ish", False, "reconcile")
    assert "unknown" in event.note
    assert recorder.calls == []


# -- receivers ------------------------------------------------------------------------


def test_a_raising_receiver_neither_fails_the_callback_nor_rolls_back(
    client, recorder, on_commit, caplog
):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    sms_delivered.connect(broken, weak=False)
    try:
        message = make_message()
        with caplog.at_level(logging.ERROR, logger="django_exotel_sms"), on_commit():
            assert post_status(client, message, "sent") == 200
    finally:
        sms_delivered.disconnect(broken)
    message.refresh_from_db()
    assert message.status == status.SENT
    assert recorder.names() == ["changed", "delivered"]  # other receivers still ran
    assert any("raised" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_signals_follow_the_real_commit_and_skip_rollbacks(client, recorder):
    message = make_message()
    with transaction.atomic():
        assert apply_report(message.pk, StatusReport(status.SENT), StatusEvent.SOURCE_CALLBACK)
        assert recorder.calls == []
    assert recorder.names() == ["changed", "delivered"]
    assert all(c["in_atomic"] is False for c in recorder.calls)
    assert all(c["stored_status"] == status.SENT for c in recorder.calls)

    other = make_message(sid="sid-b", to=GOOD[1])
    with pytest.raises(RuntimeError), transaction.atomic():
        apply_report(other.pk, StatusReport(status.FAILED), StatusEvent.SOURCE_CALLBACK)
        raise RuntimeError("rolled back")
    other.refresh_from_db()
    assert other.status == status.QUEUED
    assert recorder.names(other.pk) == []

    # Through the view, in autocommit: the signal has fired by the time the answer is sent.
    assert post_status(client, other, "failed-dnd", "23005") == 200
    assert recorder.names(other.pk) == ["changed", "failed"]
