"""The REST API: every endpoint and action, permissions, validation, filters, pagination."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_exotel_sms import reconcile, sending, status
from django_exotel_sms.backends import reset_backends
from django_exotel_sms.exceptions import ExotelAuthError
from django_exotel_sms.models import (
    DltEntity,
    SenderId,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    StatusEvent,
)

pytestmark = pytest.mark.django_db

SECRETS = ("sandboxtoken", "sandboxkey")
OTP_BODY = "Your OTP is {#numeric#}. Do not share it."
TO = "+919876543210"


class RecordingClient(APIClient):
    """Keeps every response so the fixture can check none of them holds a credential."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.responses: list[Any] = []

    def request(self, *args: Any, **kwargs: Any) -> Any:
        response = super().request(*args, **kwargs)
        self.responses.append(response)
        return response


@pytest.fixture
def enqueued() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Celery is not running: record what would have been enqueued."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    with (
        mock.patch(
            "django_exotel_sms.tasks.send_message.apply_async",
            side_effect=lambda args, **kw: calls.append(("send_message", tuple(args))),
        ),
        mock.patch(
            "django_exotel_sms.tasks.send_batch.apply_async",
            side_effect=lambda args, **kw: calls.append(("send_batch", tuple(args))),
        ),
    ):
        yield calls


def leaks(responses: list[Any]) -> list[str]:
    """Which credentials appear in which responses."""
    return [
        f"{secret!r} in {getattr(response, 'request', {}).get('PATH_INFO')}"
        for response in responses
        for secret in SECRETS
        if secret in response.content.decode("utf-8", "replace")
    ]


@pytest.fixture
def clients() -> Iterator[list[RecordingClient]]:
    """Every response of every test here is checked for credentials."""
    made: list[RecordingClient] = []
    yield made
    assert leaks([r for client in made for r in client.responses]) == []


def _perms(*codenames: str) -> list[Permission]:
    found = list(
        Permission.objects.filter(
            content_type__app_label="django_exotel_sms", codename__in=codenames
        )
    )
    assert len(found) == len(codenames)
    return found


@pytest.fixture
def make_client(clients, django_user_model, enqueued):
    def make(*codenames: str, anonymous: bool = False) -> RecordingClient:
        client = RecordingClient()
        clients.append(client)
        if not anonymous:
            user = django_user_model.objects.create_user(username=f"user{len(clients)}")
            user.user_permissions.add(*_perms(*codenames))
            client.force_authenticate(user)
        return client

    return make


ALL_PERMS = tuple(
    f"{verb}_{model}"
    for verb in ("add", "change", "delete", "view")
    for model in ("smsmessage", "smstemplate", "smsbatch", "dltentity", "senderid")
)


@pytest.fixture
def api(make_client, enqueued) -> RecordingClient:
    """A user holding every permission of the app."""
    return make_client(*ALL_PERMS)


@pytest.fixture
def otp() -> SmsTemplate:
    return SmsTemplate.objects.create(name="otp", body=OTP_BODY, dlt_template_id="1107000000001")


def url(name: str, *args: Any) -> str:
    return reverse(f"exotel-sms-{name}", args=args)


def post(client: APIClient, path: str, data: Any, **extra: Any) -> Any:
    return client.post(path, data, format="json", **extra)


# -- messages: create -------------------------------------------------------------------


def test_router_and_urls() -> None:
    from django_exotel_sms.api import router
    from django_exotel_sms.api.urls import urlpatterns

    assert [prefix for prefix, _viewset, _name in router.registry] == [
        "messages",
        "templates",
        "batches",
        "dlt-entities",
        "senders",
        "suppressions",
        "exports",
    ]
    assert len(urlpatterns) == len(router.urls)


def test_api_root_lists_the_endpoints(api) -> None:
    response = api.get(reverse("api-root"))
    assert response.status_code == 200
    assert set(response.json()) == {
        "messages",
        "templates",
        "batches",
        "dlt-entities",
        "senders",
        "suppressions",
    }


def test_send_one_saves_and_enqueues_on_commit(
    api, enqueued, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            api,
            url("message-list"),
            {"to": "09876543210", "body": "Hello there", "custom_field": "order-7"},
        )
    assert response.status_code == 201, response.json()
    data = response.json()
    message = SmsMessage.objects.get()
    assert data["id"] == message.pk
    assert data["to"] == TO == message.to
    assert data["status"] == status.PENDING
    assert data["sender"] == "EXOTEL"
    assert data["custom_field"] == "order-7"
    assert data["segments"] == 1 and data["encoding"] == "plain"
    assert data["events"] == []
    assert "claim_token" not in data
    assert enqueued == [("send_message", (message.pk,))]


def test_send_with_template_by_name_id_and_positional_context(api, otp) -> None:
    by_name = post(api, url("message-list"), {"to": TO, "template": "otp", "context": ["4321"]})
    by_id = post(api, url("message-list"), {"to": TO, "template": otp.pk, "context": {"1": "99"}})
    assert by_name.status_code == 201 and by_id.status_code == 201
    assert by_name.json()["body"] == "Your OTP is 4321. Do not share it."
    assert by_id.json()["body"] == "Your OTP is 99. Do not share it."
    assert by_id.json()["template"] == otp.pk
    assert by_id.json()["dlt_template_id"] == "1107000000001"


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"to": "12345", "body": "Hi"}, "to", "'12345' is not a"),
        ({"to": TO}, "body", "Give a body or a template."),
        ({"to": TO, "body": "   "}, "body", "SMS body is empty."),
        ({"to": TO, "template": "nope"}, "template", "No SMS template named 'nope'."),
        ({"to": TO, "template": "otp", "context": ["abc"]}, "context", "is not numeric"),
        ({"to": TO, "template": "otp", "context": "123"}, "context", "context must be an array"),
        ({"to": TO, "template": True}, "template", "template is a template id"),
        ({"to": TO, "body": "Hi", "sms_type": "spam"}, "sms_type", "sms_type must be one of"),
        ({"to": TO, "body": "Hi", "priority": "urgent"}, "priority", "priority must be"),
        ({"to": TO, "body": "Hi", "account": "other"}, "account", "Unknown Exotel account"),
        ({"to": TO, "body": "Hi", "templat": "otp"}, "templat", "Unknown field"),
        ({"to": TO, "body": "Hi ☺", "encoding": "plain"}, "encoding", "not in the GSM 7-bit"),
    ],
)
def test_send_validation_errors_save_nothing(
    api, otp, enqueued, django_capture_on_commit_callbacks, payload, field, text
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(api, url("message-list"), payload)
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert any(text in message for message in errors[field]), errors
    assert SmsMessage.objects.count() == 0
    assert enqueued == []


def test_send_reports_every_problem_at_once(api) -> None:
    response = post(api, url("message-list"), {"to": "x", "body": "", "sms_type": "spam"})
    assert response.status_code == 400
    assert {"to", "body", "sms_type"} <= set(response.json())


def test_inactive_template_cannot_send(api, otp) -> None:
    otp.is_active = False
    otp.save()
    response = post(api, url("message-list"), {"to": TO, "template": "otp", "context": [1]})
    assert response.status_code == 400
    assert response.json()["template"] == [
        "Template 'otp' is inactive; activate it before sending."
    ]


# -- messages: list, filters, pagination, retrieve -----------------------------------------


def _message(**fields: Any) -> SmsMessage:
    values: dict[str, Any] = {"to": TO, "body": "Hi", "sender": "EXOTEL"} | fields
    return SmsMessage.objects.create(**values)


def test_list_filters(api, otp) -> None:
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
    sent = _message(status=status.SENT, detailed_status_code=20005, custom_field="a")
    failed = _message(
        to="+919876500001", status=status.FAILED, detailed_status_code=20001, batch=batch
    )
    queued = _message(status=status.QUEUED, template=otp, custom_field="b")
    old = _message(status=status.SENT)
    SmsMessage.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=10))

    def ids(**params: Any) -> list[int]:
        response = api.get(url("message-list"), params)
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids() == sorted([sent.pk, failed.pk, queued.pk, old.pk], reverse=True)
    assert set(ids(status="sent")) == {sent.pk, old.pk}
    assert set(ids(status="sent,failed")) == {sent.pk, old.pk, failed.pk}
    assert ids(detailed_status_code="20001") == [failed.pk]
    assert set(ids(detailed_status_code="20001,20005")) == {failed.pk, sent.pk}
    assert ids(to="09876500001") == [failed.pk]  # national form, normalised
    assert ids(to="+91 98765 00001") == [failed.pk]
    assert ids(batch=batch.pk) == [failed.pk]
    assert ids(template=otp.pk) == [queued.pk]
    assert ids(template="otp") == [queued.pk]
    assert ids(custom_field="b") == [queued.pk]
    week_ago = (timezone.now() - dt.timedelta(days=7)).isoformat()
    assert ids(created_before=week_ago) == [old.pk]
    assert set(ids(created_after=week_ago)) == {sent.pk, failed.pk, queued.pk}
    assert ids(created_after=week_ago, status="sent") == [sent.pk]
    # "+05:30" sent unencoded arrives as " 05:30": still read as an offset.
    later = (timezone.now() + dt.timedelta(hours=1)).astimezone(
        dt.timezone(dt.timedelta(hours=5.5))
    )
    assert ids(created_after=later.strftime("%Y-%m-%dT%H:%M:%S 05:30")) == []
    assert len(ids(created_before=later.strftime("%Y-%m-%dT%H:%M:%S 05:30"))) == 4


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"status": "delivered"}, "status", "Unknown status 'delivered'"),
        ({"detailed_status_code": "abc"}, "detailed_status_code", "whole numbers"),
        ({"to": "123"}, "to", "'123' is not a"),
        ({"batch": "x"}, "batch", "A batch id is a whole number"),
        ({"created_after": "yesterday"}, "created_after", "Not an ISO 8601"),
        ({"created_before": "2024-13-45"}, "created_before", "Not an ISO 8601"),
    ],
)
def test_list_filter_errors(api, params, field, text) -> None:
    response = api.get(url("message-list"), params)
    assert response.status_code == 400
    assert text in response.json()[field][0]


def test_cursor_pagination_walks_every_message_once(api) -> None:
    created = [_message(custom_field=str(i)).pk for i in range(30)]
    seen: list[int] = []
    next_url: str | None = url("message-list") + "?page_size=7"
    pages = 0
    while next_url:
        response = api.get(next_url)
        assert response.status_code == 200
        data = response.json()
        assert len(data["results"]) <= 7
        seen += [row["id"] for row in data["results"]]
        next_url = data["next"]
        pages += 1
        if pages == 2:
            _message(custom_field="new")  # rows added meanwhile shift no page boundary
    assert pages == 5
    assert seen == sorted(created, reverse=True)


def test_cursor_pagination_previous_link(api) -> None:
    for i in range(5):
        _message(custom_field=str(i))
    first = api.get(url("message-list"), {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    back = api.get(second["previous"]).json()
    assert [r["id"] for r in back["results"]] == [r["id"] for r in first["results"]]


def test_retrieve_has_the_status_history_newest_last(api) -> None:
    message = _message(status=status.SENT)
    for name, source in [
        (status.QUEUED, StatusEvent.SOURCE_API),
        (status.SUBMITTED, StatusEvent.SOURCE_CALLBACK),
        (status.SENT, StatusEvent.SOURCE_CALLBACK),
    ]:
        StatusEvent.objects.create(message=message, status=name, source=source, payload={"x": 1})
    response = api.get(url("message-detail", message.pk))
    assert response.status_code == 200
    events = response.json()["events"]
    assert [e["status"] for e in events] == ["queued", "submitted", "sent"]
    assert events[-1]["source"] == "callback"
    assert "payload" not in events[0]
    assert api.get(url("message-detail", 999999)).status_code == 404


# -- messages: refresh ------------------------------------------------------------------


def test_refresh_asks_exotel_and_returns_the_message(
    api, django_capture_on_commit_callbacks
) -> None:
    response = post(api, url("message-list"), {"to": TO, "body": "Hi"})
    pk = response.json()["id"]
    sending.deliver_message(pk)  # locmem backend: accepted, queued
    assert SmsMessage.objects.get(pk=pk).status == status.QUEUED
    response = post(api, url("message-refresh", pk), None)
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["status"] == status.SENT
    assert data["detailed_status_code"] == 20005
    assert data["events"][-1]["source"] == "reconcile"


def test_refresh_exotel_error_is_502_without_credentials(api, sandbox, settings) -> None:
    response = post(api, url("message-list"), {"to": TO, "body": "Hi"})
    pk = response.json()["id"]
    sending.deliver_message(pk)
    assert SmsMessage.objects.get(pk=pk).sid
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "API_TOKEN": "wrong-secret-token"}
    reset_backends()
    response = post(api, url("message-refresh", pk), None)
    assert response.status_code == 502
    data = response.json()
    assert data["detail"].startswith("Could not get this message's status from Exotel")
    assert "wrong-secret-token" not in response.content.decode()
    assert SmsMessage.objects.get(pk=pk).status == status.QUEUED


def test_refresh_maps_any_exotel_error_to_502(api) -> None:
    message = _message(sid="abc", status=status.QUEUED)
    error = ExotelAuthError("Unauthorized;", http_status=401, code=34010)
    with mock.patch.object(reconcile, "refresh_message", side_effect=error):
        response = post(api, url("message-refresh", message.pk), None)
    assert response.status_code == 502
    assert response.json()["error_code"] == 34010


def test_refresh_answers_429_with_retry_after_rather_than_wait_for_the_rate_limit(
    api, settings
) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "GET_RATE_LIMIT": "1/minute"}
    message = _message(sid="abc", status=status.QUEUED)
    waited = AssertionError("the request waited for the rate limiter")
    with mock.patch("django_exotel_sms.ratelimit.time.sleep", side_effect=waited):
        assert post(api, url("message-refresh", message.pk), None).status_code == 200
        response = post(api, url("message-refresh", message.pk), None)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["detail"].startswith("The Exotel account's request rate is used up")
    message.refresh_from_db()
    assert message.status == status.QUEUED


# -- messages: bulk ---------------------------------------------------------------------


BULK_CAP_TEXT = (
    "At most 3 recipients per request (EXOTEL_SMS['API_MAX_BULK']); got 4. Split them over "
    "several requests, or import them where no HTTP request waits: "
    "SmsMessage.objects.send_bulk() in Python, or manage.py exotel_send --csv FILE."
)


def test_bulk_recipients_are_capped_per_request(api, otp, settings) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "API_MAX_BULK": 3}
    numbers = [f"+9198765{i:05d}" for i in range(4)]
    messages = [{"to": n, "body": "Hi"} for n in numbers]
    recipients = [{"to": n, "context": ["1"]} for n in numbers]
    before = (SmsMessage.objects.count(), SmsBatch.objects.count())
    for path, data, field in [
        (url("message-bulk"), {"to": numbers, "body": "Hi"}, "to"),
        (url("message-bulk"), {"messages": messages}, "messages"),
        (url("template-send", otp.pk), {"recipients": recipients}, "recipients"),
    ]:
        response = post(api, path, data)
        assert response.status_code == 400
        assert response.json() == {field: [BULK_CAP_TEXT]}
    assert (SmsMessage.objects.count(), SmsBatch.objects.count()) == before
    # At the cap it is accepted.
    response = post(api, url("message-bulk"), {"to": numbers[:3], "body": "Hi"})
    assert response.status_code == 201
    assert response.json()["total"] == 3


def test_bulk_same_text(api, enqueued, django_capture_on_commit_callbacks) -> None:
    numbers = [f"+9198765{i:05d}" for i in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            api, url("message-bulk"), {"to": numbers, "body": "Sale today", "name": "promo"}
        )
    assert response.status_code == 201, response.json()
    data = response.json()
    batch = SmsBatch.objects.get()
    assert data["id"] == batch.pk and data["total"] == 5 and data["name"] == "promo"
    assert data["kind"] == "static"
    assert data["counts"] == {"pending": 5}
    assert data["progress"]["total"] == 5 and data["progress"]["done"] is False
    assert data["created_by"] is not None
    assert sorted(batch.messages.values_list("to", flat=True)) == numbers
    assert {name for name, _ in enqueued} == {"send_batch"}


def test_bulk_with_template_and_per_message(api, otp) -> None:
    same = post(
        api, url("message-bulk"), {"to": [TO, "09876500001"], "template": "otp", "context": [7]}
    )
    assert same.status_code == 201, same.json()
    assert same.json()["template"] == otp.pk
    per = post(
        api,
        url("message-bulk"),
        {
            "messages": [
                {"to": TO, "template": "otp", "context": ["1"]},
                {"to": 919876500002, "body": "Plain text"},
            ]
        },
    )
    assert per.status_code == 201, per.json()
    batch = SmsBatch.objects.get(pk=per.json()["id"])
    assert batch.kind == SmsBatch.KIND_DYNAMIC
    assert sorted(batch.messages.values_list("body", flat=True)) == [
        "Plain text",
        "Your OTP is 1. Do not share it.",
    ]


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"to": [TO, "555"], "body": "Hi"}, "to", "Message 2 (to):"),
        ({"body": "Hi"}, "to", "Give either to=[...] or messages=[...]."),
        ({"to": [], "body": "Hi"}, "to", "No recipients given."),
        ({"to": TO, "body": "Hi"}, "to", "Expected a list"),
        ({"messages": [{"to": TO, "body": "Hi", "colour": "red"}]}, "messages", "unknown key"),
        ({"messages": [{"to": TO, "template": "otp", "context": "7"}]}, "messages", "context"),
        ({"messages": [{"body": "Hi"}]}, "messages", "Message 1 has no 'to'."),
        ({"to": [TO], "template": "otp", "context": ["x"]}, "context", "is not numeric"),
    ],
)
def test_bulk_validation_errors_save_nothing(api, otp, payload, field, text) -> None:
    response = post(api, url("message-bulk"), payload)
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert any(text in str(message) for message in errors[field]), errors
    assert SmsBatch.objects.count() == 0
    assert SmsMessage.objects.count() == 0


def test_bulk_of_250_is_one_batch_sent_in_chunks_of_100(
    api, sandbox, django_capture_on_commit_callbacks
) -> None:
    numbers = [f"+9198765{i:05d}" for i in range(250)]

    def run_now(args: Any, **kwargs: Any) -> None:
        sending.run_until_done(lambda: sending.deliver_batch(args[0]))

    with (
        mock.patch("django_exotel_sms.tasks.send_batch.apply_async", side_effect=run_now),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = post(api, url("message-bulk"), {"to": numbers, "body": "Hello all"})
    assert response.status_code == 201, response.json()
    assert response.json()["total"] == 250
    batch = SmsBatch.objects.get()
    assert batch.messages.count() == 250
    posts = [r for r in sandbox.requests if r.method == "POST"]
    assert [len(r.recipients) for r in posts] == [100, 100, 50]
    # Same text to many is /send with many To; every request authenticated.
    assert {(r.path, r.authorized) for r in posts} == {("/v1/Accounts/sandbox/Sms/send.json", True)}
    assert sorted(n for r in posts for n in r.recipients) == numbers
    detail = api.get(url("batch-detail", batch.pk)).json()
    assert detail["total"] == 250
    assert sum(detail["counts"].values()) == 250
    assert detail["progress"]["accepted"] == 250


# -- templates --------------------------------------------------------------------------


def test_template_crud(api) -> None:
    entity = DltEntity.objects.create(entity_id="1101000000000000002", name="Acme")
    sender = SenderId.objects.create(header="ACMEIN", entity=entity)
    created = post(
        api,
        url("template-list"),
        {
            "name": "welcome",
            "body": "Welcome {#var#}, your code is {#numeric#}. ",
            "dlt_template_id": "1107000000000000009",
            "sender": sender.pk,
            "entity": entity.pk,
        },
    )
    assert created.status_code == 201, created.json()
    data = created.json()
    assert data["body"].endswith(". ")  # whitespace kept: DLT matching is exact
    assert data["placeholders"] == ["var", "numeric"]
    assert data["sms_type"] == "transactional"
    pk = data["id"]
    assert api.get(url("template-detail", pk)).json()["name"] == "welcome"
    assert [t["id"] for t in api.get(url("template-list")).json()["results"]] == [pk]
    patched = api.patch(url("template-detail", pk), {"is_active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["is_active"] is False
    put = api.put(
        url("template-detail", pk),
        {"name": "welcome2", "body": "Hi {#var#}"},
        format="json",
    )
    assert put.status_code == 200, put.json()
    assert SmsTemplate.objects.get(pk=pk).name == "welcome2"
    assert api.delete(url("template-detail", pk)).status_code == 204
    assert not SmsTemplate.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"name": "t", "body": "Hello {#name#}"}, "body", "Unknown placeholder '{#name#}'"),
        ({"name": "t", "body": "Hello {#var"}, "body", "has no closing '#}'"),
        ({"name": "t", "body": "   "}, "body", ""),
        ({"name": "t", "body": "Hi", "dlt_template_id": "12a"}, "dlt_template_id", "digits only"),
        ({"name": "otp", "body": "Hi"}, "name", "already exists"),
        ({"name": "t", "body": "Hi", "sms_type": "spam"}, "sms_type", "not a valid choice"),
    ],
)
def test_template_validation(api, otp, payload, field, text) -> None:
    response = post(api, url("template-list"), payload)
    assert response.status_code == 400
    assert text in response.json()[field][0]
    assert SmsTemplate.objects.count() == 1


def test_template_update_is_validated_too(api, otp) -> None:
    response = api.patch(url("template-detail", otp.pk), {"body": "{#bogus#}"}, format="json")
    assert response.status_code == 400
    assert "Unknown placeholder" in response.json()["body"][0]
    otp.refresh_from_db()
    assert otp.body == OTP_BODY


def test_template_render_preview(api, otp) -> None:
    response = post(api, url("template-render", otp.pk), {"context": ["123456"]})
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "text": "Your OTP is 123456. Do not share it.",
        "encoding": "plain",
        "segments": 1,
        "length": 36,
        "dlt_match": {"matched": True, "reason": ""},
    }
    unicode = SmsTemplate.objects.create(name="hi", body="नमस्ते {#var#}")
    data = post(api, url("template-render", unicode.pk), {"context": {"var1": "राम"}}).json()
    assert data["encoding"] == "unicode" and data["text"] == "नमस्ते राम"
    bad = post(api, url("template-render", otp.pk), {"context": ["12ab"]})
    assert bad.status_code == 400
    assert "is not numeric" in bad.json()["context"][0]
    missing = post(api, url("template-render", otp.pk), {})
    assert missing.status_code == 400 and "has no value" in missing.json()["context"][0]
    assert SmsMessage.objects.count() == 0


def test_template_send_one_and_many(api, otp, enqueued, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        one = post(api, url("template-send", otp.pk), {"to": TO, "context": ["42"]})
    assert one.status_code == 201, one.json()
    assert one.json()["body"] == "Your OTP is 42. Do not share it."
    assert one.json()["template"] == otp.pk
    with django_capture_on_commit_callbacks(execute=True):
        many = post(
            api,
            url("template-send", otp.pk),
            {
                "recipients": [{"to": TO, "context": ["1"]}, {"to": "09876500001", "context": [2]}],
                "name": "otps",
            },
        )
    assert many.status_code == 201, many.json()
    batch = SmsBatch.objects.get(pk=many.json()["id"])
    assert batch.total == 2 and batch.template == otp and batch.name == "otps"
    assert sorted(batch.messages.values_list("body", flat=True)) == [
        "Your OTP is 1. Do not share it.",
        "Your OTP is 2. Do not share it.",
    ]
    assert [name for name, _ in enqueued][0] == "send_message"
    assert "send_batch" in [name for name, _ in enqueued]


@pytest.mark.parametrize(
    ("payload", "field", "text"),
    [
        ({"context": ["1"]}, "to", "Give either to"),
        ({"to": TO, "recipients": [{"to": TO}]}, "to", "Give either to"),
        ({"recipients": [{"to": TO, "ctx": [1]}]}, "recipients", "unknown key(s) ctx"),
        ({"recipients": [{"context": [1]}]}, "recipients", "Recipient 1 has no 'to'."),
        ({"recipients": [{"to": TO, "context": ["x"]}]}, "messages", "is not numeric"),
        ({"to": TO, "context": ["1"], "sms_type": "bulk"}, "sms_type", "sms_type must be one of"),
    ],
)
def test_template_send_validation(api, otp, payload, field, text) -> None:
    response = post(api, url("template-send", otp.pk), payload)
    assert response.status_code == 400
    assert text in str(response.json()[field]), response.json()
    assert SmsMessage.objects.count() == 0 and SmsBatch.objects.count() == 0


# -- batches ----------------------------------------------------------------------------


def test_batches_list_and_retrieve_with_counts(api) -> None:
    batches = []
    for n in range(3):
        batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=n + 2, name=f"b{n}")
        for i in range(n + 2):
            _message(batch=batch, status=status.SENT if i == 0 else status.QUEUED)
        batches.append(batch)
    response = api.get(url("batch-list"))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [b.pk for b in reversed(batches)]
    last = rows[0]
    assert last["counts"] == {"sent": 1, "queued": 3}
    assert last["progress"] == {
        "total": 4,
        "counts": {"sent": 1, "queued": 3},
        "final": 1,
        "accepted": 4,
        "percent_final": 25.0,
        "done": False,
    }
    detail = api.get(url("batch-detail", batches[0].pk)).json()
    assert detail["counts"] == {"sent": 1, "queued": 1}
    assert detail["progress"]["percent_final"] == 50.0


def test_batch_list_counts_take_one_query_per_page(api) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert api.get(url("batch-list")).status_code == 200
        return len(ctx.captured_queries)

    SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
    queries()  # warm up: the user's permissions are cached after the first request
    few = queries()
    for _ in range(10):
        batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
        _message(batch=batch)
    assert queries() == few


def test_batches_are_read_only(api) -> None:
    response = post(api, url("batch-list"), {"kind": "static"})
    assert response.status_code == 405


# -- DLT entities and senders -----------------------------------------------------------


def test_dlt_entity_crud_and_validation(api) -> None:
    created = post(
        api, url("dlt-entity-list"), {"entity_id": "1101000000000000005", "name": "Acme"}
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    bad = post(api, url("dlt-entity-list"), {"entity_id": "11x", "name": "Bad"})
    assert bad.status_code == 400
    assert bad.json() == {"entity_id": ["A DLT entity id is made of digits only."]}
    dup = post(api, url("dlt-entity-list"), {"entity_id": "1101000000000000005", "name": "Again"})
    assert dup.status_code == 400 and "entity_id" in dup.json()
    assert DltEntity.objects.count() == 1
    renamed = api.patch(url("dlt-entity-detail", pk), {"name": "Acme Ltd"}, format="json")
    assert renamed.json()["name"] == "Acme Ltd"
    SenderId.objects.create(header="ACMEIN", entity_id=pk)
    protected = api.delete(url("dlt-entity-detail", pk))
    assert protected.status_code == 409
    assert protected.json() == {
        "detail": "Acme Ltd (1101000000000000005) is still used by sender IDs; "
        "change or delete those first."
    }
    SenderId.objects.all().delete()
    assert api.delete(url("dlt-entity-detail", pk)).status_code == 204


def test_sender_crud_and_validation(api) -> None:
    created = post(api, url("sender-list"), {"header": "acmein", "description": "Main"})
    assert created.status_code == 201, created.json()
    assert created.json()["header"] == "ACMEIN"
    assert created.json()["is_promotional"] is False
    dup = post(api, url("sender-list"), {"header": "AcmeIn"})
    assert dup.status_code == 400
    assert dup.json()["header"] == ["A sender ID with this header exists."]
    bad = post(api, url("sender-list"), {"header": "AB1"})
    assert bad.status_code == 400
    assert "A sender ID is 6 letters (transactional) or 6 digits" in bad.json()["header"][0]
    assert SenderId.objects.count() == 1
    pk = created.json()["id"]
    assert (
        api.patch(url("sender-detail", pk), {"is_active": False}, format="json").status_code == 200
    )
    inactive = post(api, url("message-list"), {"to": TO, "body": "Hi", "sender": "ACMEIN"})
    assert inactive.status_code == 400
    assert inactive.json()["sender"] == ["Sender ID 'ACMEIN' is inactive."]
    assert [s["header"] for s in api.get(url("sender-list")).json()["results"]] == ["ACMEIN"]
    assert api.delete(url("sender-detail", pk)).status_code == 204


# -- permissions ------------------------------------------------------------------------


def test_anonymous_is_refused_everywhere(make_client, otp) -> None:
    anon = make_client(anonymous=True)
    message = _message()
    for method, path in [
        ("get", url("message-list")),
        ("get", url("message-detail", message.pk)),
        ("post", url("message-list")),
        ("post", url("message-bulk")),
        ("post", url("message-refresh", message.pk)),
        ("get", url("template-list")),
        ("post", url("template-render", otp.pk)),
        ("post", url("template-send", otp.pk)),
        ("get", url("batch-list")),
        ("get", url("dlt-entity-list")),
        ("get", url("sender-list")),
    ]:
        response = getattr(anon, method)(path, {"to": TO, "body": "Hi"}, format="json")
        assert response.status_code in (401, 403), (method, path, response.status_code)
    assert SmsMessage.objects.count() == 1


def test_user_without_permissions_is_refused(make_client, otp) -> None:
    nobody = make_client()
    message = _message()
    assert nobody.get(url("message-list")).status_code == 403
    assert nobody.get(url("message-detail", message.pk)).status_code == 403
    assert post(nobody, url("message-list"), {"to": TO, "body": "Hi"}).status_code == 403
    assert post(nobody, url("template-send", otp.pk), {"to": TO, "context": [1]}).status_code == 403
    assert nobody.get(url("batch-list")).status_code == 403
    assert post(nobody, url("sender-list"), {"header": "ACMEIN"}).status_code == 403
    assert SmsMessage.objects.count() == 1 and not SenderId.objects.exists()


def test_view_permission_lists_but_cannot_send(make_client, otp, enqueued) -> None:
    viewer = make_client("view_smsmessage", "view_smstemplate", "view_smsbatch")
    message = _message(sid="s1", status=status.QUEUED)
    assert viewer.get(url("message-list")).status_code == 200
    assert viewer.get(url("message-detail", message.pk)).status_code == 200
    assert viewer.get(url("batch-list")).status_code == 200
    assert post(viewer, url("template-render", otp.pk), {"context": [1]}).status_code == 200
    assert post(viewer, url("message-list"), {"to": TO, "body": "Hi"}).status_code == 403
    assert post(viewer, url("message-bulk"), {"to": [TO], "body": "Hi"}).status_code == 403
    assert post(viewer, url("template-send", otp.pk), {"to": TO, "context": [1]}).status_code == 403
    assert post(viewer, url("message-refresh", message.pk), None).status_code == 403
    assert viewer.delete(url("template-detail", otp.pk)).status_code == 403
    assert SmsMessage.objects.count() == 1 and enqueued == []


def test_sending_needs_only_add_permission(make_client, otp) -> None:
    sender = make_client("add_smsmessage")
    assert post(sender, url("message-list"), {"to": TO, "body": "Hi"}).status_code == 201
    assert post(sender, url("template-send", otp.pk), {"to": TO, "context": [1]}).status_code == 201
    assert sender.get(url("message-list")).status_code == 403  # reading needs view_
    assert post(sender, url("template-render", otp.pk), {"context": [1]}).status_code == 403
    refresher = make_client("change_smsmessage")
    message = SmsMessage.objects.first()
    assert message is not None
    assert post(refresher, url("message-refresh", message.pk), None).status_code == 200


def test_permission_classes_are_configurable(make_client, settings) -> None:
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    nobody = make_client()
    assert nobody.get(url("message-list")).status_code == 200
    assert make_client(anonymous=True).get(url("message-list")).status_code in (401, 403)
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    }
    assert make_client(anonymous=True).get(url("message-list")).status_code == 200


def test_project_authentication_classes_are_respected(make_client, django_user_model) -> None:
    # No authentication_classes of our own: DRF's defaults here (Session, Basic) apply.
    user = django_user_model.objects.create_user(username="basic", password="pw-12345")
    user.user_permissions.add(*_perms("view_smsmessage"))
    client = make_client(anonymous=True)
    client.credentials(HTTP_AUTHORIZATION="Basic YmFzaWM6d3Jvbmc=")  # basic:wrong
    assert client.get(url("message-list")).status_code in (401, 403)
    client.credentials(HTTP_AUTHORIZATION="Basic YmFzaWM6cHctMTIzNDU=")  # basic:pw-12345
    assert client.get(url("message-list")).status_code == 200
    assert client.login(username="basic", password="pw-12345")  # session
    client.credentials()
    assert client.get(url("message-list")).status_code == 200


def test_the_credential_check_can_fail() -> None:
    from django.http import HttpResponse

    assert leaks([HttpResponse("ok"), HttpResponse('{"token": "sandboxtoken"}')]) == [
        "'sandboxtoken' in None"
    ]
