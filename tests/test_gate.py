"""The send gate's shared mechanism: closing rows to a local final status, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_exotel_sms import gate, signals, status
from django_exotel_sms.backends import locmem
from django_exotel_sms.models import SmsMessage, StatusEvent
from django_exotel_sms.sending import deliver_batch

pytestmark = pytest.mark.django_db(transaction=True)


def _pending(n: int = 3) -> list[int]:
    batch = SmsMessage.objects.send_bulk(
        to=[f"+9198700000{i:02d}" for i in range(n)], body="hello", send_async=True
    )
    return list(batch.messages.order_by("pk").values_list("pk", flat=True))


def test_close_moves_only_rows_still_pending_and_signals_once(monkeypatch) -> None:
    monkeypatch.setattr("django_exotel_sms.managers.dispatch_batch", lambda *a, **k: None)
    pks = _pending(3)
    SmsMessage.objects.filter(pk=pks[2]).update(status=status.SUBMITTING)
    seen: list[tuple[int, str]] = []

    def receiver(sender, message, new_status, **kwargs):
        seen.append((message.pk, new_status))

    signals.sms_status_changed.connect(receiver)
    try:
        moved = gate.close(dict.fromkeys(pks, "manual"), status.CANCELLED)
        again = gate.close(dict.fromkeys(pks, "manual"), status.CANCELLED)
    finally:
        signals.sms_status_changed.disconnect(receiver)
    assert sorted(moved) == pks[:2]
    assert again == []
    assert sorted(seen) == [(pks[0], status.CANCELLED), (pks[1], status.CANCELLED)]
    rows = dict(SmsMessage.objects.filter(pk__in=pks).values_list("pk", "status"))
    assert rows == {pks[0]: "cancelled", pks[1]: "cancelled", pks[2]: "submitting"}
    assert StatusEvent.objects.filter(message_id__in=pks, status="cancelled").count() == 2
    reasons = SmsMessage.objects.filter(pk__in=pks[:2]).values_list("status_reason", flat=True)
    assert set(reasons) == {"manual"}


def test_expired_rows_are_never_claimed_and_are_closed(monkeypatch) -> None:
    monkeypatch.setattr("django_exotel_sms.managers.dispatch_batch", lambda *a, **k: None)
    pks = _pending(4)
    past = timezone.now() - timedelta(seconds=1)
    SmsMessage.objects.filter(pk__in=pks[:3]).update(expires_at=past)
    batch_id = SmsMessage.objects.get(pk=pks[0]).batch_id
    outcome = deliver_batch(batch_id)
    assert outcome.accepted == 1
    assert [m.to for m in locmem.outbox] == [SmsMessage.objects.get(pk=pks[3]).to]
    statuses = dict(SmsMessage.objects.filter(pk__in=pks).values_list("pk", "status"))
    assert [statuses[pk] for pk in pks[:3]] == [status.EXPIRED] * 3
    assert status.is_terminal(status.EXPIRED) and not status.is_failure(status.EXPIRED)
