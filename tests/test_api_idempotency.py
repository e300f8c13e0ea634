"""``Idempotency-Key`` on the sending endpoints: retries never send twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_exotel_sms.api import idempotency
from django_exotel_sms.models import IdempotencyRecord, SmsBatch, SmsMessage, SmsTemplate

TO = "+919876543210"
SEND = "exotel-sms-message-list"


@pytest.fixture
def enqueued() -> Iterator[list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []
    with (
        mock.patch(
            "django_exotel_sms.tasks.send_message.apply_async",
            side_effect=lambda args, **kw: calls.append(("send_message", args[0])),
        ),
        mock.patch(
            "django_exotel_sms.tasks.send_batch.apply_async",
            side_effect=lambda args, **kw: calls.append(("send_batch", args[0])),
        ),
    ):
        yield calls


def _client(django_user_model: Any, name: str) -> APIClient:
    user = django_user_model.objects.create_superuser(username=name, password=None)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def api(django_user_model, enqueued) -> APIClient:
    return _client(django_user_model, "alice")


@pytest.fixture
def otp(db) -> SmsTemplate:
    return SmsTemplate.objects.create(name="otp", body="Your OTP is {#numeric#}.")


def send(client: APIClient, data: Any, key: str | None = "k-1", name: str = SEND, *args: Any):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(reverse(name, args=args), data, format="json", **headers)


pytestmark = pytest.mark.django_db


def test_same_key_same_payload_replays_the_first_answer(
    api, enqueued, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = send(api, {"to": TO, "body": "Hello"})
    with django_capture_on_commit_callbacks(execute=True):
        again = send(api, {"body": "Hello", "to": TO})  # key order does not matter
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert SmsMessage.objects.count() == 1
    assert enqueued == [("send_message", first.json()["id"])]
    record = IdempotencyRecord.objects.get()
    assert (record.key, record.endpoint, record.response_status) == ("k-1", "messages-create", 201)
    assert record.response_body == first.json()
    assert record.request_hash == idempotency.request_hash(
        {"scope": {}, "data": {"to": TO, "body": "Hello"}}
    )


def test_without_key_every_request_sends(api) -> None:
    send(api, {"to": TO, "body": "Hello"}, key=None)
    send(api, {"to": TO, "body": "Hello"}, key=None)
    assert SmsMessage.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


def test_same_key_different_payload_is_422(api) -> None:
    assert send(api, {"to": TO, "body": "Hello"}).status_code == 201
    response = send(api, {"to": TO, "body": "Hello!"})
    assert response.status_code == 422
    assert "already used with a different request body" in response.json()["detail"]
    assert SmsMessage.objects.count() == 1


def test_keys_belong_to_a_user_and_an_endpoint(api, django_user_model) -> None:
    bob = _client(django_user_model, "bob")
    assert send(api, {"to": TO, "body": "Hello"}).status_code == 201
    assert send(bob, {"to": TO, "body": "Hello"}).status_code == 201
    bulk = send(api, {"to": [TO], "body": "Hello"}, name="exotel-sms-message-bulk")
    assert bulk.status_code == 201
    assert SmsMessage.objects.count() == 3
    assert IdempotencyRecord.objects.count() == 3


def test_a_failed_validation_does_not_burn_the_key(api) -> None:
    bad = send(api, {"to": "123", "body": "Hello"})
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = send(api, {"to": TO, "body": "Hello"})
    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good.headers
    assert SmsMessage.objects.count() == 1


def test_an_unexpected_error_releases_the_key(api) -> None:
    with (
        mock.patch.object(SmsMessage.objects, "send", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        send(api, {"to": TO, "body": "Hello"})
    assert not IdempotencyRecord.objects.exists()
    assert send(api, {"to": TO, "body": "Hello"}).status_code == 201


def test_keys_expire(api, settings) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "IDEMPOTENCY_KEY_TTL": 60}
    first = send(api, {"to": TO, "body": "Hello"})
    assert send(api, {"to": TO, "body": "Hello"}).headers.get("Idempotent-Replayed") == "true"
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    later = send(api, {"to": TO, "body": "Hello"})
    assert later.status_code == 201
    assert "Idempotent-Replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    assert SmsMessage.objects.count() == 2
    record = IdempotencyRecord.objects.get()  # the expired record was replaced
    assert record.response_body["id"] == later.json()["id"]
    # An expired key may also carry a different payload now.
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert send(api, {"to": TO, "body": "Other"}).status_code == 201


def test_purge_expired(api, settings) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "IDEMPOTENCY_KEY_TTL": 60}
    send(api, {"to": TO, "body": "Hello"}, key="old")
    send(api, {"to": TO, "body": "Hello"}, key="new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(seconds=61)
    )
    assert idempotency.purge_expired() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_a_request_in_progress_is_409(api, django_user_model) -> None:
    user = django_user_model.objects.get(username="alice")
    IdempotencyRecord.objects.create(
        key="k-1",
        user_key=str(user.pk),
        endpoint="messages-create",
        request_hash=idempotency.request_hash({"scope": {}, "data": {"to": TO, "body": "Hello"}}),
    )
    response = send(api, {"to": TO, "body": "Hello"})
    assert response.status_code == 409
    assert "in progress" in response.json()["detail"]
    assert SmsMessage.objects.count() == 0
    # A different body with the key is still a 422, not a 409.
    assert send(api, {"to": TO, "body": "Other"}).status_code == 422


def test_an_abandoned_request_is_taken_over(api, django_user_model) -> None:
    user = django_user_model.objects.get(username="alice")
    record = IdempotencyRecord.objects.create(
        key="k-1",
        user_key=str(user.pk),
        endpoint="messages-create",
        request_hash=idempotency.request_hash({"scope": {}, "data": {"to": TO, "body": "Hello"}}),
    )
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(seconds=idempotency.IN_PROGRESS_TIMEOUT + 1)
    )
    response = send(api, {"to": TO, "body": "Hello"})
    assert response.status_code == 201
    assert SmsMessage.objects.count() == 1
    assert IdempotencyRecord.objects.get().response_status == 201


def test_a_request_whose_key_was_taken_over_sends_nothing(
    api, enqueued, django_capture_on_commit_callbacks
) -> None:
    original = SmsMessage.objects.send

    def slow_send(*args: Any, **kwargs: Any) -> SmsMessage:
        message = original(*args, **kwargs)
        # Meanwhile a retry found our record abandoned and took the key over.
        IdempotencyRecord.objects.all().delete()
        return message

    with (
        mock.patch.object(SmsMessage.objects, "send", side_effect=slow_send),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = send(api, {"to": TO, "body": "Hello"})
    assert response.status_code == 409
    assert "took it over; nothing was sent" in response.json()["detail"]
    assert SmsMessage.objects.count() == 0
    assert enqueued == []


def test_bulk_is_idempotent(api, enqueued, django_capture_on_commit_callbacks) -> None:
    payload = {"to": [TO, "+919876500001"], "body": "Hello"}
    with django_capture_on_commit_callbacks(execute=True):
        first = send(api, payload, name="exotel-sms-message-bulk")
        again = send(api, payload, name="exotel-sms-message-bulk")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert SmsBatch.objects.count() == 1 and SmsMessage.objects.count() == 2
    assert {name for name, _ in enqueued} == {"send_batch"}
    assert len({batch for _, batch in enqueued}) == 1


def test_template_send_is_idempotent_per_template(api, otp) -> None:
    other = SmsTemplate.objects.create(name="otp2", body="Code {#numeric#}.")
    payload = {"to": TO, "context": ["12"]}
    first = send(api, payload, "k-9", "exotel-sms-template-send", otp.pk)
    again = send(api, payload, "k-9", "exotel-sms-template-send", otp.pk)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    # Same key and body for another template is another request.
    assert send(api, payload, "k-9", "exotel-sms-template-send", other.pk).status_code == 422
    many = {"recipients": [{"to": TO, "context": [1]}]}
    batch = send(api, many, "k-10", "exotel-sms-template-send", otp.pk)
    assert send(api, many, "k-10", "exotel-sms-template-send", otp.pk).json() == batch.json()
    assert SmsMessage.objects.count() == 2 and SmsBatch.objects.count() == 1


def test_key_length_is_checked(api) -> None:
    response = send(api, {"to": TO, "body": "Hello"}, key="x" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert send(api, {"to": TO, "body": "Hello"}, key="  ").status_code == 400
    assert SmsMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_send_once(django_user_model, enqueued) -> None:
    """The second request arrives while the first is inside the manager: 409, one SMS."""
    user = django_user_model.objects.create_superuser(username="racer", password=None)
    inside, release = threading.Event(), threading.Event()
    original = SmsMessage.objects.send
    results: dict[str, Any] = {}

    def blocking_send(*args: Any, **kwargs: Any) -> SmsMessage:
        inside.set()
        assert release.wait(10)
        return original(*args, **kwargs)

    def first_request() -> None:
        try:
            client = APIClient()
            client.force_authenticate(user)
            results["first"] = send(client, {"to": TO, "body": "Hello"})
        finally:
            connection.close()

    with mock.patch.object(SmsMessage.objects, "send", side_effect=blocking_send):
        thread = threading.Thread(target=first_request)
        thread.start()
        try:
            assert inside.wait(10)
            second = APIClient()
            second.force_authenticate(user)
            results["second"] = send(second, {"to": TO, "body": "Hello"})
        finally:
            release.set()
            thread.join(20)
    assert results["second"].status_code == 409
    assert results["first"].status_code == 201
    retry = APIClient()
    retry.force_authenticate(user)
    replay = send(retry, {"to": TO, "body": "Hello"})
    assert replay.status_code == 201 and replay.json() == results["first"].json()
    assert SmsMessage.objects.count() == 1
    assert enqueued == [("send_message", results["first"].json()["id"])]
