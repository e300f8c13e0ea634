"""The health view: who may call it, and what it says when the broker is away."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from django_exotel_sms import status
from django_exotel_sms.models import SmsMessage, StatusEvent

pytestmark = pytest.mark.django_db

URL = "django_exotel_sms:health"


@pytest.fixture
def token(settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "HEALTH_TOKEN": "s3cret-health"}
    return {"HTTP_AUTHORIZATION": "Bearer s3cret-health"}


def test_needs_the_token_or_a_staff_login(client, token):
    assert client.get(reverse(URL)).status_code == 403
    assert client.get(reverse(URL), HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get(reverse(URL), {"token": "s3cret-health"}).status_code == 403
    client.force_login(User.objects.create_user("ops", is_staff=True))
    assert client.get(reverse(URL)).status_code in (200, 503)


def test_reports_backlog_and_callbacks(client, token):
    now = timezone.now()
    old = SmsMessage.objects.create(to="+919876500001", body="x")
    SmsMessage.objects.filter(pk=old.pk).update(created_at=now - timedelta(minutes=10))
    SmsMessage.objects.create(
        to="+919876500002", body="x", next_attempt_at=now + timedelta(hours=1)
    )
    SmsMessage.objects.create(to="+919876500003", body="x", status=status.UNCERTAIN)
    sent = SmsMessage.objects.create(to="+919876500004", body="x", status=status.SENT)
    StatusEvent.objects.create(message=sent, status="sent", source=StatusEvent.SOURCE_CALLBACK)
    data = client.get(reverse(URL), **token).json()
    assert data["database"] is True
    assert data["backlog"] == 2 and data["deferred"] == 1 and data["uncertain"] == 1
    assert 590 <= data["oldest_pending_age_seconds"] <= 700
    assert data["minutes_since_last_callback"] < 1


def test_unreachable_broker_is_503(client, token, monkeypatch):
    # Celery's broker_url prefers the environment's CELERY_BROKER_URL to its own setting.
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    before = {
        "task_always_eager": current_app.conf.task_always_eager,
        "broker_url": current_app.conf.broker_url,
    }
    current_app.conf.update(task_always_eager=False, broker_url="redis://127.0.0.1:9/0")
    try:
        response = client.get(reverse(URL), **token)
    finally:
        current_app.conf.update(before)
    assert response.status_code == 503
    assert response.json()["broker"] is False and response.json()["ok"] is False


def test_reconcile_logs_carry_structured_fields(monkeypatch, caplog, settings):
    from django_exotel_sms import reconcile
    from django_exotel_sms.backends import locmem
    from django_exotel_sms.exceptions import ExotelError

    def broken(self, sid):
        raise ExotelError("Exotel said no")

    monkeypatch.setattr(locmem.LocmemBackend, "get_message", broken)
    message = SmsMessage.objects.create(
        to="+919876543210", body="x", status=status.QUEUED, sid="sid-7", account="default"
    )
    SmsMessage.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with caplog.at_level("WARNING", logger="django_exotel_sms"):
        reconcile.check_open_messages()
    record = next(r for r in caplog.records if r.getMessage().startswith("Could not refresh"))
    assert (record.sms_pk, record.sms_sid, record.sms_account) == (message.pk, "sid-7", "default")
    assert record.sms_to == "+9198******10"
