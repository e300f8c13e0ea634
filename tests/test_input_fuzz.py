"""Unvalidated input is a 4xx with nothing changed, never a 500: the REST filters and
serializers, object ids, and the admin changelist's query string.

The named cases are the ones an outside review found; the property-based tests throw
arbitrary values (bounded in number, to stay fast) at the same doors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from django_exotel_sms.models import DltEntity, SenderId, SmsBatch, SmsMessage, SmsTemplate

pytestmark = pytest.mark.django_db

API = "/api/sms"
ADMIN = "/admin/django_exotel_sms"
HUGE = "1" * 23  # more digits than any integer column holds
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def no_celery() -> Iterator[None]:
    with (
        mock.patch("django_exotel_sms.tasks.send_message.apply_async"),
        mock.patch("django_exotel_sms.tasks.send_batch.apply_async"),
    ):
        yield


@pytest.fixture
def rows() -> dict[str, Any]:
    template = SmsTemplate.objects.create(
        name="otp", body="Your OTP is {#numeric#}.", dlt_template_id="1107000000000000001"
    )
    message = SmsMessage.objects.send("+919876543210", template=template, context=["1234"])
    batch = SmsMessage.objects.send_bulk(to=["+919876543211"], body="Hello")
    return {"template": template, "message": message, "batch": batch}


@pytest.fixture
def superuser() -> User:
    return User.objects.create_superuser("root", "root@example.com", None)  # no hashing


@pytest.fixture
def api(superuser: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(superuser)
    return client


@pytest.fixture
def admin(superuser: User) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def counts() -> tuple[int, ...]:
    return tuple(
        model.objects.count() for model in (SmsMessage, SmsBatch, SmsTemplate, SenderId, DltEntity)
    )


# -- the cases found ------------------------------------------------------------------------

BAD_FILTERS = [
    {"batch": "²"},
    {"template": "²"},
    {"detailed_status_code": "²"},
    {"detailed_status_code": "1,-²"},
    {"batch": HUGE},
    {"template": HUGE},
    {"detailed_status_code": HUGE},
    {"created_after": "9999-12-31T23:59:59-23:59"},
    {"created_before": "0001-01-01T00:00:00+23:59"},
    {"created_after": "0001-01-01T00:00:00+05:30"},
    {"custom_field": "ref\x00"},
    {"template": "otp\x00"},
    {"to": "+91987654\x003210"},
    {"status": "sent\x00"},
]


@pytest.mark.parametrize("query", BAD_FILTERS)
def test_rest_filter_values_that_cannot_be_read_are_a_400(
    api: APIClient, rows: dict[str, Any], query: dict[str, str]
) -> None:
    response = api.get(f"{API}/messages/", query)
    assert response.status_code == 400, response.content
    assert set(response.json()) == set(query)


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/messages/{HUGE}/",
        f"{API}/batches/{HUGE}/",
        f"{API}/templates/{HUGE}/",
        f"{API}/senders/{HUGE}/",
        f"{API}/dlt-entities/{HUGE}/",
        f"{API}/messages/²/",
    ],
)
def test_rest_ids_no_row_can_have_are_a_404(api: APIClient, path: str) -> None:
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code in (404, 405)


def test_rest_actions_on_ids_no_row_can_have_are_a_404(api: APIClient) -> None:
    before = counts()
    assert api.post(f"{API}/messages/{HUGE}/refresh/").status_code == 404
    body = {"to": "+919876543210", "context": ["1"]}
    assert api.post(f"{API}/templates/{HUGE}/send/", body, format="json").status_code == 404
    assert counts() == before


@pytest.mark.parametrize(
    "query",
    [
        {"detailed_status_code": "²"},
        {"template__id__exact": "²"},
        {"batch__id__exact": "²"},
        {"detailed_status_code": HUGE},
        {"template__id__exact": HUGE},
        {"batch__id__exact": HUGE},
        {"q": "ref\x00"},
    ],
)
def test_admin_changelist_values_that_cannot_be_read_are_refused(
    admin: Client, rows: dict[str, Any], query: dict[str, str]
) -> None:
    response = admin.get(f"{ADMIN}/smsmessage/", query)
    # The admin's answer to a lookup it cannot use: back to the list, flagged ?e=1.
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize(
    "model", ["smsmessage", "smsbatch", "smstemplate", "senderid", "dltentity"]
)
@pytest.mark.parametrize("page", ["change", "history", "delete"])
def test_admin_object_pages_for_ids_no_row_can_have(admin: Client, model: str, page: str) -> None:
    response = admin.get(f"{ADMIN}/{model}/{HUGE}/{page}/")
    # Django's answer for a missing object: a redirect with "doesn't exist", or a 404.
    assert response.status_code in (302, 404)


# -- arbitrary input ------------------------------------------------------------------------

# Values that have broken parsers before, mixed with arbitrary text.
TRICKY = st.sampled_from(
    [
        "²",
        "١٢",
        "-0",
        "-",
        HUGE,
        "-" + HUGE,
        "9" * 19,
        "\x00",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01",
        "2024-02-30",
        "2024-05-01 10:00:00 05:30",
        "sent,,failed",
        " ",
        "%",
        "1e3",
        "0x10",
    ]
)
VALUES = st.one_of(TRICKY, st.text(max_size=30))
FILTER_NAMES = [
    "status",
    "detailed_status_code",
    "to",
    "batch",
    "template",
    "custom_field",
    "created_after",
    "created_before",
    "cursor",
    "page_size",
    "format",
]


@FUZZ
@given(query=st.dictionaries(st.sampled_from(FILTER_NAMES), VALUES, max_size=4))
def test_rest_message_list_never_fails_on_its_query_string(
    api: APIClient, rows: dict[str, Any], query: dict[str, str]
) -> None:
    response = api.get(f"{API}/messages/", query)
    assert response.status_code < 500, (query, response.content[:300])


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | VALUES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(VALUES, inner, max_size=3),
    max_leaves=6,
)
SEND_FIELDS = [
    "to",
    "body",
    "template",
    "context",
    "sender",
    "dlt_template_id",
    "dlt_entity_id",
    "sms_type",
    "custom_field",
    "priority",
    "encoding",
    "shorten_urls",
    "shorten_url_params",
    "account",
]
PHONE = st.sampled_from(["+919876543210", "09876543212", "+6591234567"])
MESSAGE = st.fixed_dictionaries(
    {"to": PHONE, "body": st.sampled_from(["Hello", "Your OTP is 1234."])},
    optional={name: JSON for name in SEND_FIELDS if name not in ("to", "body")},
)


@FUZZ
@given(
    endpoint=st.sampled_from(["messages", "messages/bulk", "templates/send", "templates/render"]),
    data=st.one_of(
        MESSAGE,
        st.fixed_dictionaries({"to": st.lists(PHONE, max_size=3)}, optional={"body": JSON}),
        st.fixed_dictionaries({"messages": st.lists(MESSAGE | JSON, max_size=3)}),
        st.fixed_dictionaries({"recipients": st.lists(MESSAGE | JSON, max_size=3)}),
        st.dictionaries(st.sampled_from([*SEND_FIELDS, "name", "messages"]), JSON, max_size=5),
    ),
)
def test_rest_sending_never_fails_on_its_body(
    api: APIClient, rows: dict[str, Any], endpoint: str, data: dict[str, Any]
) -> None:
    path = endpoint.replace("templates/", f"templates/{rows['template'].pk}/")
    before = counts()
    response = api.post(f"{API}/{path}/", data, format="json")
    assert response.status_code < 500, (data, response.content[:300])
    if response.status_code >= 400:
        assert counts() == before


CONFIG_FIELDS = ["name", "body", "dlt_template_id", "sms_type", "sender", "entity", "is_active"]


@FUZZ
@given(
    resource=st.sampled_from(["templates", "senders", "dlt-entities"]),
    data=st.dictionaries(
        st.sampled_from([*CONFIG_FIELDS, "header", "entity_id", "description"]), JSON, max_size=5
    ),
)
def test_rest_configuration_rows_never_fail_on_their_body(
    api: APIClient, rows: dict[str, Any], resource: str, data: dict[str, Any]
) -> None:
    before = counts()
    response = api.post(f"{API}/{resource}/", data, format="json")
    assert response.status_code < 500, (data, response.content[:300])
    if response.status_code >= 400:
        assert counts() == before


ADMIN_PARAMS = [
    "status__exact",
    "detailed_status_code",
    "template__id__exact",
    "batch__id__exact",
    "created",
    "q",
    "o",
    "p",
    "e",
    "all",
]


@FUZZ
@given(query=st.dictionaries(st.sampled_from(ADMIN_PARAMS), VALUES, max_size=4))
def test_admin_message_changelist_never_fails_on_its_query_string(
    admin: Client, rows: dict[str, Any], query: dict[str, str]
) -> None:
    response = admin.get(f"{ADMIN}/smsmessage/", query)
    assert response.status_code < 500, (query, response.content[:300])


@FUZZ
@given(
    model=st.sampled_from(["smsbatch", "smstemplate", "senderid", "dltentity"]),
    query=st.dictionaries(
        st.sampled_from(["q", "kind__exact", "is_active__exact", "sms_type__exact", "o", "p"]),
        VALUES,
        max_size=3,
    ),
)
def test_admin_other_changelists_never_fail_on_their_query_string(
    admin: Client, rows: dict[str, Any], model: str, query: dict[str, str]
) -> None:
    response = admin.get(f"{ADMIN}/{model}/", query)
    assert response.status_code < 500, (query, response.content[:300])
