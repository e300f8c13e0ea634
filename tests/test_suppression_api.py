"""The REST API's side of consent: ``suppressions/`` (model permissions), 429 over a limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from django_exotel_sms import suppression
from django_exotel_sms.models import SmsMessage, Suppression

pytestmark = pytest.mark.django_db

TO = "+919876543210"


@pytest.fixture
def make_client(django_user_model, monkeypatch):
    # Celery is not running: sends stay pending.
    monkeypatch.setattr("django_exotel_sms.managers.dispatch_message", lambda *a, **k: None)
    made = 0

    def make(*codenames: str) -> APIClient:
        nonlocal made
        made += 1
        user = django_user_model.objects.create_user(username=f"user{made}")
        user.user_permissions.add(
            *Permission.objects.filter(
                content_type__app_label="django_exotel_sms", codename__in=codenames
            )
        )
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


def _list() -> str:
    return reverse("exotel-sms-suppression-list")


def _post(client: APIClient, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data, format="json")


def test_suppressions_need_model_permissions(make_client):
    Suppression.objects.create(number=TO, reason="opt_out")
    assert make_client().get(_list()).status_code == 403
    viewer = make_client("view_suppression")
    assert viewer.get(_list()).status_code == 200
    assert _post(viewer, _list(), {"number": TO, "reason": "dnd"}).status_code == 403
    entry = Suppression.objects.get()
    detail = reverse("exotel-sms-suppression-detail", args=[entry.pk])
    assert viewer.delete(detail).status_code == 403
    assert make_client("view_suppression", "delete_suppression").delete(detail).status_code == 204


def test_any_number_format_is_stored_in_e164_once(make_client):
    api = make_client("view_suppression", "add_suppression")
    created = _post(api, _list(), {"number": "098765 43210", "reason": "opt_out"})
    assert created.status_code == 201, created.json()
    assert (created.json()["number"], created.json()["source"]) == (TO, "api")
    again = _post(api, _list(), {"number": "+91 98765 43210", "reason": "dnd"})
    assert again.status_code == 400
    promo = _post(api, _list(), {"number": TO, "reason": "dnd", "scope": "promotional"})
    assert promo.status_code == 201
    bad = _post(api, _list(), {"number": "12", "reason": "dnd"})
    assert bad.status_code == 400 and "number" in bad.json()
    found = api.get(_list(), {"number": "09876543210", "scope": "promotional"}).json()["results"]
    assert [(r["number"], r["scope"]) for r in found] == [(TO, "promotional")]
    assert suppression.is_suppressed("09876543210", "transactional")


def test_a_send_over_a_recipient_limit_answers_429_with_retry_after(make_client, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RECIPIENT_LIMITS": {"*": "1/hour"}}
    api = make_client("add_smsmessage", "view_smsmessage")
    path = reverse("exotel-sms-message-list")
    assert _post(api, path, {"to": TO, "body": "Your code is 1"}).status_code == 201
    refused = _post(api, path, {"to": TO, "body": "Your code is 2"})
    assert refused.status_code == 429
    assert 3500 < int(refused["Retry-After"]) <= 3600
    assert "Too many messages to +919876543210" in refused.json()["detail"]
    assert SmsMessage.objects.count() == 1


def test_a_suppressed_message_shows_its_reason(make_client):
    suppression.suppress(TO, reason="opt_out")
    api = make_client("add_smsmessage", "view_smsmessage")
    created = _post(api, reverse("exotel-sms-message-list"), {"to": TO, "body": "Hi"})
    assert created.status_code == 201
    assert (created.json()["status"], created.json()["status_reason"]) == ("suppressed", "opt_out")
    listed = api.get(reverse("exotel-sms-message-list")).json()["results"]
    assert listed[0]["status_reason"] == "opt_out"
