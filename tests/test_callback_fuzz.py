"""Arbitrary form data thrown at the callback views never gets a 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_exotel_sms import callbacks, status
from django_exotel_sms.models import SmsBatch, SmsMessage

pytestmark = pytest.mark.django_db

STATUS_FIELDS = [
    "SmsSid",
    "To",
    "Status",
    "SmsUnits",
    "DetailedStatus",
    "DetailedStatusCode",
    "DateSent",
    "CustomField",
    "Price",
    "smssid",
    "STATUS",
]
CLICK_FIELDS = [
    "sid",
    "short_url",
    "short_code",
    "long_url",
    "Tracking",
    "custom_field",
    "Expires_at",
    "Created_time",
    "Last_viewed",
    "Total_clicks",
    "Account_sid",
    "Country_code",
    "Date_created",
    "Sms_sid",
    "To",
    "city",
    "Country",
    "IP",
    "Postal code",
    "Region",
    "Accuracy radius",
    "OS_version",
    "OS_name",
    "Device_name",
    "Platform type",
]
TRICKY = [
    "",
    " ",
    "sid-single",
    "sid-batch-0",
    "sid-batch-1",
    "sid-elsewhere",
    "sent",
    "SENT",
    "failed",
    "failed-dnd",
    "submitted",
    "queued",
    "rejected",
    "pending",
    "20005",
    "23999",
    "-1",
    "1.5",
    "9" * 30,
    "9" * 400 + ".0",
    "1e999",
    "inf",
    "nan",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\x00",
    "a\x00b",
    "1970-01-01 05:30:00",
    "0000-00-00 00:00:00",
    "2024-02-30 10:00:00",
    "9999-12-31T23:59:59+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "999999.9999999",
    "1e999999999",
    "Tue, 01 Jan 2999 00:00:00 GMT",
    "+919876543210",
    "09876543211",
    "+0",
    "\u202e\ufeff",
    "😀" * 40,
]

values = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.characters(codec="utf-8"), max_size=80),
    st.builds(
        lambda c, n: c * n, st.characters(codec="utf-8"), st.integers(0, 6000)
    ),  # huge strings
)


def forms(fields: list[str]) -> st.SearchStrategy[dict[str, str]]:
    keys = st.one_of(st.sampled_from(fields), st.text(st.characters(codec="utf-8"), max_size=120))
    return st.one_of(
        st.fixed_dictionaries({f: values for f in fields[:4]}),  # the usual fields, odd values
        st.dictionaries(keys, values, max_size=80),
    )


@pytest.fixture
def world():
    """A single message, a batch of two and a message elsewhere; the scopes under test."""
    single = SmsMessage.objects.create(
        to="+919876543210", body="x", sid="sid-single", status=status.QUEUED
    )
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=2)
    for i in range(2):
        SmsMessage.objects.create(
            to=f"+91987654321{i}",
            body="x",
            sid=f"sid-batch-{i}",
            status=status.UNCERTAIN if i else status.QUEUED,
            batch=batch,
        )
    SmsMessage.objects.create(to="+919876543219", body="x", sid="sid-elsewhere")
    SmsMessage.objects.create(to="+919876543218", body="x", sid=None, status=status.UNCERTAIN)
    return {"single": single, "batch": batch}


def _tokens(world: dict[str, Any], salt: str) -> list[str]:
    single, batch = world["single"], world["batch"]
    return [
        callbacks.make_token(callbacks.MESSAGE, single.pk, single.created_at, salt=salt),
        callbacks.make_token(callbacks.BATCH, batch.pk, batch.created_at, salt=salt),
    ]


def _post(client, path: str, form: dict[str, str], urlencoded: bool):
    if urlencoded:
        body = urlencode(form)
        return client.generic("POST", path, body, content_type="application/x-www-form-urlencoded")
    return client.post(path, form)  # multipart, as the test client encodes it


FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(form=forms(STATUS_FIELDS), which=st.integers(0, 1), urlencoded=st.booleans())
def test_status_callback_with_a_valid_token_never_500s(client, world, form, which, urlencoded):
    token = _tokens(world, callbacks.STATUS_SALT)[which]
    response = _post(client, f"/exotel/status/{token}/", form, urlencoded)
    assert response.status_code in (200, 400, 403)


@FUZZ
@given(
    form=forms(STATUS_FIELDS),
    token=st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=1, max_size=200).filter(
            lambda t: "/" not in t
        ),
        st.sampled_from(["m1:abc:def", "b1:1tAbCd:xyz", "m:1:2", ":::", "m99999999999999999999"]),
    ),
    urlencoded=st.booleans(),
)
def test_status_callback_with_an_invalid_token_is_403(client, world, form, token, urlencoded):
    path = f"/exotel/status/{quote(token, safe='')}/"
    response = _post(client, path, form, urlencoded)
    assert response.status_code == 403


@FUZZ
@given(form=forms(CLICK_FIELDS), which=st.integers(0, 1), urlencoded=st.booleans())
def test_click_callback_never_500s(client, world, form, which, urlencoded):
    token = _tokens(world, callbacks.CLICK_SALT)[which]
    response = _post(client, f"/exotel/click/{token}/", form, urlencoded)
    assert response.status_code in (200, 400, 403)


@FUZZ
@given(
    sid=st.sampled_from(["sid-single", "sid-batch-0", "sid-batch-1", "sid-elsewhere", "new-sid"]),
    word=st.sampled_from(["sent", "failed", "failed-dnd", "submitted", "sending", "odd"]),
    extra=st.dictionaries(st.sampled_from(STATUS_FIELDS[3:9]), values, max_size=6),
    which=st.integers(0, 1),
)
def test_well_formed_reports_only_ever_move_forward(client, world, sid, word, extra, which):
    token = _tokens(world, callbacks.STATUS_SALT)[which]
    before = dict(SmsMessage.objects.values_list("pk", "status"))
    form = {**extra, "SmsSid": sid, "Status": word}
    response = client.post(f"/exotel/status/{token}/", form)
    assert response.status_code in (200, 400, 403)
    after = dict(SmsMessage.objects.values_list("pk", "status"))
    for pk, old in before.items():
        assert after[pk] == old or status.can_advance(old, after[pk])
        assert after[pk] in dict(status.STATUS_CHOICES)
    if response.status_code != 200:
        assert after == before
