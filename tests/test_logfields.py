"""Log lines about messages carry structured fields, with numbers masked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_exotel_sms import callbacks, sending
from django_exotel_sms.models import SmsMessage

from .helpers import numbers

pytestmark = pytest.mark.django_db


def test_a_retry_line_names_its_messages_batch_and_account(sandbox, caplog):
    sandbox.configure(throttle_rate=1.0, retry_after=0)
    targets = numbers(3, start=4000)
    batch = SmsMessage.objects.send_bulk(to=targets, body="Hi")
    with caplog.at_level("INFO", logger="django_exotel_sms"):
        sending.deliver_batch(batch.pk)
    record = next(r for r in caplog.records if "retrying in" in r.getMessage())
    pks = sorted(batch.messages.values_list("pk", flat=True))
    assert (sorted(record.sms_pks), record.sms_batch, record.sms_account) == (
        pks,
        batch.pk,
        "default",
    )
    assert not any(number in record.getMessage() for number in targets)


def test_a_callback_line_carries_the_sid(client, caplog):
    message = SmsMessage.objects.send(numbers(1, start=4100)[0], "Hi", send_async=True)
    token = callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)
    with caplog.at_level("INFO", logger="django_exotel_sms"):
        response = client.post(
            reverse("django_exotel_sms:status-callback", args=[token]),
            {"SmsSid": "unknown-sid-1", "Status": "sent"},
        )
    assert response.status_code == 200
    record = next(r for r in caplog.records if "unknown Sid" in r.getMessage())
    assert record.sms_sid == "unknown-sid-1"
