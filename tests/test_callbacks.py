"""The status and click callback views: signed URLs, scope, forward-only status, 400/403/200."""

from __future__ import annotations

import types
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client
from django.urls import reverse

from django_exotel_sms import callbacks, sending, status
from django_exotel_sms.backends import locmem
from django_exotel_sms.models import ClickEvent, SmsBatch, SmsMessage, StatusEvent
from django_exotel_sms.signals import sms_delivered, sms_failed, sms_status_changed
from django_exotel_sms.tracking import HELD_NOTE, NOT_THIS_NOTE, RELEASED_NOTE

pytestmark = pytest.mark.django_db

IST = timezone(timedelta(hours=5, minutes=30))
NUMBERS = ["+919876543210", "+919876543211", "+919876543212"]


# -- helpers --------------------------------------------------------------------------


def status_path(token: str) -> str:
    return reverse("django_exotel_sms:status-callback", args=[token])


def click_path(token: str) -> str:
    return reverse("django_exotel_sms:click-callback", args=[token])


def local_path(url: str) -> str:
    """The path of an absolute callback URL built from CALLBACK_BASE_URL."""
    return urlsplit(url).path


def report(sid: str, word: str = "sent", **extra: str) -> dict[str, str]:
    form = {
        "SmsSid": sid,
        "To": "09876543210",
        "Status": word,
        "SmsUnits": "1",
        "DetailedStatus": "DELIVERED_TO_HANDSET",
        "DetailedStatusCode": "20005",
        "DateSent": "2024-05-01 10:00:05",
    }
    form.update(extra)
    return form


def message_token(message: SmsMessage, salt: str = callbacks.STATUS_SALT) -> str:
    return callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at, salt=salt)


def batch_token(batch: SmsBatch, salt: str = callbacks.STATUS_SALT) -> str:
    return callbacks.make_token(callbacks.BATCH, batch.pk, batch.created_at, salt=salt)


def legacy_token(kind: str, pk: int, salt: str = callbacks.STATUS_SALT) -> str:
    """A token as issued before tokens were bound to the row's creation time: pk only."""
    return signing.TimestampSigner(key=settings.SECRET_KEY, salt=salt).sign(f"{kind}{pk}")


def snapshot() -> tuple[list[tuple[object, ...]], int, int]:
    """Everything a callback could change."""
    rows = list(
        SmsMessage.objects.order_by("pk").values_list(
            "pk",
            "sid",
            "status",
            "detailed_status_code",
            "detailed_status",
            "sms_units",
            "price",
            "sent_at",
            "submitted_at",
        )
    )
    return rows, StatusEvent.objects.count(), ClickEvent.objects.count()


def make_message(
    sid: str | None = "sid-a", st: str = status.QUEUED, **fields: object
) -> SmsMessage:
    values: dict[str, object] = {"to": NUMBERS[0], "body": "Your OTP is 1234", "sender": "EXOTEL"}
    values.update(fields)
    return SmsMessage.objects.create(sid=sid, status=st, **values)


@pytest.fixture
def send(django_capture_on_commit_callbacks):
    """Send one message through the manager (locmem backend) and return it with its Sid."""

    def _send(to: str = NUMBERS[0], body: str = "Your OTP is 1234", **options: object):
        with django_capture_on_commit_callbacks(execute=True):
            message = SmsMessage.objects.send(to, body, send_async=False, **options)
        message.refresh_from_db()
        return message

    return _send


@pytest.fixture
def send_bulk(django_capture_on_commit_callbacks):
    def _send_bulk(to: list[str] = NUMBERS, body: str = "Sale today", **options: object):
        with django_capture_on_commit_callbacks(execute=True):
            batch = SmsMessage.objects.send_bulk(to=to, body=body, send_async=False, **options)
        return batch

    return _send_bulk


@pytest.fixture
def events():
    """What the signals said, as (signal, message pk, previous, new) tuples."""
    seen: list[tuple[str, int, str, str]] = []

    def changed(sender, message, previous_status, new_status, source, **kw):
        seen.append(("changed", message.pk, previous_status, new_status))

    def delivered(sender, message, previous_status, **kw):
        seen.append(("delivered", message.pk, previous_status, message.status))

    def failed(sender, message, previous_status, **kw):
        seen.append(("failed", message.pk, previous_status, message.status))

    sms_status_changed.connect(changed, weak=False)
    sms_delivered.connect(delivered, weak=False)
    sms_failed.connect(failed, weak=False)
    yield seen
    sms_status_changed.disconnect(changed)
    sms_delivered.disconnect(delivered)
    sms_failed.disconnect(failed)


# -- valid callbacks ------------------------------------------------------------------


def test_single_message_callback_through_the_url_it_was_sent_with(client, send):
    message = send()
    assert message.status == status.QUEUED and message.sid
    url = locmem.outbox[0].options["status_callback"]
    assert url.startswith("https://sms.example.com/exotel/status/")

    response = client.post(local_path(url), report(message.sid, CustomField="order-7"))

    assert response.status_code == 200
    assert response.content == b"OK"
    assert response["Content-Type"].startswith("text/plain")
    message.refresh_from_db()
    assert message.status == status.SENT
    assert message.detailed_status_code == 20005
    assert message.detailed_status == "DELIVERED_TO_HANDSET"
    assert message.sms_units == 1
    assert message.sent_at == datetime(2024, 5, 1, 10, 0, 5, tzinfo=IST)
    event = message.events.get(source=StatusEvent.SOURCE_CALLBACK)
    assert event.applied is True
    assert event.status == status.SENT
    assert event.payload == report(message.sid, CustomField="order-7")


def test_bulk_callbacks_share_the_batch_url(client, send_bulk):
    batch = send_bulk()
    urls = {entry.options["status_callback"] for entry in locmem.outbox}
    assert len(urls) == 1  # one static-bulk request, one callback URL
    path = local_path(urls.pop())
    # The batch's token (compared by what it names: its signing time is in whole seconds).
    token = path.rsplit("/", 2)[-2]
    assert callbacks.read_token(token) == callbacks.read_token(batch_token(batch))
    messages = list(batch.messages.order_by("pk"))
    outcomes = ["sent", "failed-dnd", "failed"]
    codes = ["20005", "23005", "23010"]
    for message, word, code in zip(messages, outcomes, codes):
        form = report(message.sid, word, To=message.to, DetailedStatusCode=code)
        assert client.post(path, form).status_code == 200
    assert [m.status for m in batch.messages.order_by("pk")] == outcomes
    assert batch.progress()["done"] is True


def test_callback_is_a_constant_small_number_of_queries(
    client, send_bulk, django_assert_max_num_queries, events
):
    batch = send_bulk()
    path = status_path(batch_token(batch))
    message = batch.messages.order_by("pk").first()
    with django_assert_max_num_queries(8):
        assert client.post(path, report(message.sid, To=message.to)).status_code == 200


def test_sid_adoption_is_a_constant_small_number_of_queries(
    client, django_assert_max_num_queries, events
):
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=len(NUMBERS))
    for number in NUMBERS:
        make_message(sid=None, st=status.UNCERTAIN, to=number, batch=batch)
    with django_assert_max_num_queries(12):
        form = report("lost", To=NUMBERS[2])
        assert client.post(status_path(batch_token(batch)), form).status_code == 200
    assert SmsMessage.objects.get(sid="lost").to == NUMBERS[2]


def test_csrf_enforcing_client_can_post(send):
    message = send()
    client = Client(enforce_csrf_checks=True)
    response = client.post(status_path(message_token(message)), report(message.sid))
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == status.SENT


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_only_post(client, method):
    message = make_message()
    before = snapshot()
    response = getattr(client, method)(status_path(message_token(message)))
    assert response.status_code == 405
    response = getattr(client, method)(click_path(message_token(message)))
    assert response.status_code == 405
    assert snapshot() == before


def test_token_contains_colons_and_reverses():
    token = callbacks.make_token(callbacks.BATCH, 12, datetime.now(timezone.utc))
    assert ":" in token
    assert status_path(token) == f"/exotel/status/{token}/"
    assert click_path(token) == f"/exotel/click/{token}/"


# -- forged, tampered, expired, cross-scope -------------------------------------------


@pytest.fixture
def two_of_each():
    """Two single messages and two batches of two, all queued with Sids."""
    single_a = make_message("single-a")
    single_b = make_message("single-b", to=NUMBERS[1])
    batches = []
    for name in ("A", "B"):
        batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, name=name, total=2)
        for i in range(2):
            make_message(f"batch-{name}-{i}", to=NUMBERS[i], batch=batch)
        batches.append(batch)
    return types.SimpleNamespace(a=single_a, b=single_b, batch_a=batches[0], batch_b=batches[1])


def _flip(token: str, index: int) -> str:
    char = token[index]
    return token[:index] + ("B" if char != "B" else "C") + token[index + 1 :]


FORGERIES = {
    "random string": lambda s: ("not-a-token", "single-a"),
    "unsigned value": lambda s: (f"m{s.a.pk}", "single-a"),
    "tampered pk": lambda s: (f"m{s.b.pk}" + message_token(s.a)[len(f"m{s.a.pk}") :], "single-b"),
    "tampered signature": lambda s: (_flip(message_token(s.a), -3), "single-a"),
    "tampered timestamp": lambda s: (_flip(message_token(s.a), len(f"m{s.a.pk}:") + 1), "single-a"),
    "other key": lambda s: (
        signing.TimestampSigner(key="some-other-key", salt=callbacks.STATUS_SALT).sign(
            f"m{s.a.pk}"
        ),
        "single-a",
    ),
    "click token at status url": lambda s: (message_token(s.a, callbacks.CLICK_SALT), "single-a"),
    "bad kind": lambda s: (
        signing.TimestampSigner(
            key="test-secret-key-not-for-production", salt=callbacks.STATUS_SALT
        ).sign(f"x{s.a.pk}"),
        "single-a",
    ),
}

# A valid token with a Sid outside its scope: answered like an unknown Sid (200), so a
# token tells nothing about other messages, and nothing changes.
CROSS_SCOPE = {
    "message A token, message B sid": lambda s: (message_token(s.a), "single-b"),
    "batch A token, batch B sid": lambda s: (batch_token(s.batch_a), "batch-B-0"),
    "batch token, single message sid": lambda s: (batch_token(s.batch_a), "single-a"),
    "message token, batch message sid": lambda s: (message_token(s.a), "batch-A-0"),
    "batch A token as message token": lambda s: (
        callbacks.make_token(callbacks.MESSAGE, s.batch_a.pk, s.batch_a.created_at),
        "batch-A-1",
    ),
    "legacy message A token, message B sid": lambda s: (
        legacy_token(callbacks.MESSAGE, s.a.pk),
        "single-b",
    ),
}


@pytest.mark.parametrize("name", list(FORGERIES))
def test_forged_and_out_of_scope_callbacks_are_403_and_change_nothing(
    client, two_of_each, events, django_capture_on_commit_callbacks, name
):
    token, sid = FORGERIES[name](two_of_each)
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(status_path(token), report(sid))
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert snapshot() == before
    assert events == []


@pytest.mark.parametrize("name", list(CROSS_SCOPE))
def test_sid_outside_the_tokens_scope_is_answered_like_an_unknown_sid(
    client, two_of_each, events, django_capture_on_commit_callbacks, name
):
    token, sid = CROSS_SCOPE[name](two_of_each)
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        cross = client.post(status_path(token), report(sid))
        unknown = client.post(status_path(token), report("never-seen"))
    assert (cross.status_code, cross.content, cross["Content-Type"]) == (
        unknown.status_code,
        unknown.content,
        unknown["Content-Type"],
    )
    assert cross.status_code == 200
    assert snapshot() == before
    assert events == []


def test_same_sids_with_the_right_tokens_are_accepted(client, two_of_each):
    """The forgery table is not vacuous: each Sid is accepted with its own token."""
    s = two_of_each
    pairs = [
        (message_token(s.a), "single-a"),
        (message_token(s.b), "single-b"),
        (batch_token(s.batch_a), "batch-A-1"),
        (batch_token(s.batch_b), "batch-B-0"),
    ]
    for token, sid in pairs:
        assert client.post(status_path(token), report(sid)).status_code == 200
    assert SmsMessage.objects.filter(status=status.SENT).count() == 4


@pytest.mark.parametrize("path", ["/exotel/status/", "/exotel/status//", "/exotel/status"])
def test_missing_token_is_404_and_changes_nothing(client, two_of_each, path):
    before = snapshot()
    response = client.post(path, report("single-a"))
    assert response.status_code == 404
    assert snapshot() == before


def test_expired_token_is_403(client, settings, monkeypatch):
    message = make_message()
    an_hour_ago = datetime.now().timestamp() - 3600
    with monkeypatch.context() as m:
        m.setattr(signing, "time", types.SimpleNamespace(time=lambda: an_hour_ago))
        token = message_token(message)
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "CALLBACK_TOKEN_MAX_AGE": 600}
    before = snapshot()
    assert client.post(status_path(token), report("sid-a")).status_code == 403
    assert snapshot() == before
    # The same hour-old token is fine under the default week-long lifetime.
    settings.EXOTEL_SMS = {
        k: v for k, v in settings.EXOTEL_SMS.items() if k != "CALLBACK_TOKEN_MAX_AGE"
    }
    assert client.post(status_path(token), report("sid-a")).status_code == 200
    message.refresh_from_db()
    assert message.status == status.SENT


def test_secret_key_rotation(client, settings):
    message = make_message()
    settings.SECRET_KEY = "old-secret-key"
    token = message_token(message)
    settings.SECRET_KEY = "new-secret-key"
    settings.SECRET_KEY_FALLBACKS = []
    before = snapshot()
    assert client.post(status_path(token), report("sid-a")).status_code == 403
    assert snapshot() == before
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key"]
    assert client.post(status_path(token), report("sid-a", "submitted")).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    before = snapshot()
    assert client.post(status_path(token), report("sid-a")).status_code == 403
    assert snapshot() == before
    message.refresh_from_db()
    assert message.status == status.SUBMITTED


def test_signing_keys_rotation(client, settings):
    message = make_message()
    base = dict(settings.EXOTEL_SMS)
    settings.EXOTEL_SMS = {**base, "SIGNING_KEYS": ["key-one"]}
    token = message_token(message)
    settings.EXOTEL_SMS = {**base, "SIGNING_KEYS": ["key-two", "key-one"]}
    assert client.post(status_path(token), report("sid-a", "submitted")).status_code == 200
    assert message_token(message) != token  # new tokens use the newest key
    settings.EXOTEL_SMS = {**base, "SIGNING_KEYS": ["key-two"]}
    before = snapshot()
    assert client.post(status_path(token), report("sid-a")).status_code == 403
    assert snapshot() == before
    # SIGNING_KEYS replaces SECRET_KEY: a SECRET_KEY token is not accepted while it is set.
    settings.EXOTEL_SMS = base
    secret_token = message_token(message)
    settings.EXOTEL_SMS = {**base, "SIGNING_KEYS": ["key-two"]}
    assert client.post(status_path(secret_token), report("sid-a")).status_code == 403


# -- tokens name a row, not just a primary key ---------------------------------------


def _replace_after_restore(message: SmsMessage) -> SmsMessage:
    """flush / TRUNCATE / a restore rewinding sequences: a newer row gets the same pk."""
    pk = message.pk
    SmsMessage.objects.all().delete()
    return make_message(sid=None, st=status.UNCERTAIN, pk=pk, body="A newer message")


def test_callback_url_of_a_replaced_row_changes_nothing(client, send, events):
    message = send()
    url = locmem.outbox[0].options["status_callback"]
    newer = _replace_after_restore(message)
    events.clear()
    before = snapshot()
    for sid in ("old-sid", message.sid):
        response = client.post(local_path(url), report(sid))
        assert (response.status_code, response.content) == (200, b"OK")
    assert snapshot() == before
    newer.refresh_from_db()
    assert (newer.sid, newer.status) == (None, status.UNCERTAIN)
    assert events == []


def test_click_url_of_a_replaced_row_does_not_link_the_newer_row(client, send):
    message = send(
        body="Track https://shop.example.com/orders/42",
        shorten_urls=True,
        shorten_url_params={"tracking": True},
    )
    url = locmem.outbox[0].options["shorten_url_params"]["click_tracking_callback_url"]
    _replace_after_restore(message)
    assert client.post(local_path(url), click_form("")).status_code == 200
    assert ClickEvent.objects.get().message_id is None


def _legacy_token_signed(monkeypatch, kind: str, pk: int, seconds_ago: float) -> str:
    then = datetime.now().timestamp() - seconds_ago
    with monkeypatch.context() as m:
        m.setattr(signing, "time", types.SimpleNamespace(time=lambda: then))
        return legacy_token(kind, pk)


def test_legacy_token_names_no_row_created_after_it_was_signed(client, monkeypatch):
    """A week-old pk-only token, from before the upgrade, after a restore rewound the pks."""
    message = make_message(sid=None, st=status.UNCERTAIN)
    token = _legacy_token_signed(monkeypatch, callbacks.MESSAGE, message.pk, 6 * 24 * 3600)
    SmsMessage.objects.filter(pk=message.pk).update(
        created_at=datetime.now(timezone.utc) - timedelta(days=1)
    )
    before = snapshot()
    assert client.post(status_path(token), report("old-sid")).status_code == 200
    assert snapshot() == before


def test_legacy_tokens_work_until_turned_off(client, monkeypatch, settings):
    message = make_message(sid=None, st=status.UNCERTAIN)
    token = _legacy_token_signed(monkeypatch, callbacks.MESSAGE, message.pk, 60)
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "ACCEPT_LEGACY_CALLBACK_TOKENS": False}
    before = snapshot()
    assert client.post(status_path(token), report("lost-sid", "submitted")).status_code == 403
    assert snapshot() == before
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "ACCEPT_LEGACY_CALLBACK_TOKENS": True}
    assert client.post(status_path(token), report("lost-sid", "submitted")).status_code == 200
    message.refresh_from_db()
    assert (message.sid, message.status) == ("lost-sid", status.SUBMITTED)


# -- malformed payloads ---------------------------------------------------------------


def _without(key: str) -> dict[str, str]:
    form = report("sid-a")
    del form[key]
    return form


MALFORMED = {
    "missing SmsSid": _without("SmsSid"),
    "empty SmsSid": report(""),
    "missing Status": _without("Status"),
    "blank Status": report("sid-a", "   "),
    "non-numeric DetailedStatusCode": report("sid-a", DetailedStatusCode="abc"),
    "huge DetailedStatusCode": report("sid-a", DetailedStatusCode="9" * 15),
    "inf-sized DetailedStatusCode": report("sid-a", DetailedStatusCode="9" * 18 + ".0"),
    "SmsUnits abc": report("sid-a", SmsUnits="abc"),
    "negative SmsUnits": report("sid-a", SmsUnits="-1"),
    "SmsUnits too large": report("sid-a", SmsUnits="70000"),
    "over-long SmsSid": report("s" * 65),
    "SmsSid with whitespace": report("sid a"),
    "SmsSid with control character": report("sid\x07a"),
    "over-long Status": report("sid-a", "s" * 33),
    "over-long DetailedStatus": report("sid-a", DetailedStatus="D" * 65),
    "over-long To": report("sid-a", To="9" * 33),
    "over-long CustomField": report("sid-a", CustomField="x" * 5000),
    "NUL in a field": report("sid-a", DetailedStatus="DELIVERED\x00"),
    "too many fields": {**report("sid-a"), **{f"extra{i}": "x" for i in range(70)}},
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_payload_is_400_and_changes_nothing(client, name):
    message = make_message()
    before = snapshot()
    response = client.post(status_path(message_token(message)), MALFORMED[name])
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert 0 < len(response.content) < 100
    assert snapshot() == before


def test_bad_token_wins_over_a_malformed_payload(client):
    message = make_message()
    assert client.post(status_path("forged"), {"Status": "sent"}).status_code == 403
    assert client.post(status_path(message_token(message)), {"Status": "sent"}).status_code == 400


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nno headers here"),
        ("application/json", b'{"SmsSid": "sid-a", "Status": "sent"}'),
    ],
)
def test_unreadable_body_is_400(client, content_type, body):
    message = make_message()
    before = snapshot()
    path = status_path(message_token(message))
    response = client.generic("POST", path, body, content_type=content_type)
    assert response.status_code == 400
    assert snapshot() == before


# -- forward-only status, duplicates, reordering --------------------------------------


def _post_all(client, token, forms, capture):
    codes = []
    with capture(execute=True):
        for form in forms:
            codes.append(client.post(status_path(token), form).status_code)
    return codes


def test_duplicate_callback_applies_once_and_signals_once(
    client, events, django_capture_on_commit_callbacks
):
    message = make_message()
    token = message_token(message)
    codes = _post_all(
        client, token, [report("sid-a"), report("sid-a")], django_capture_on_commit_callbacks
    )
    assert codes == [200, 200]
    applied = list(message.events.order_by("pk").values_list("status", "applied"))
    assert applied == [(status.SENT, True), (status.SENT, False)]
    assert [e for e in events if e[0] == "delivered"] == [
        ("delivered", message.pk, status.QUEUED, status.SENT)
    ]
    assert len([e for e in events if e[0] == "changed"]) == 1


def test_late_submitted_after_sent_is_kept_but_not_applied(
    client, events, django_capture_on_commit_callbacks
):
    message = make_message()
    forms = [
        report("sid-a"),
        report(
            "sid-a", "submitted", DetailedStatus="PENDING_ON_OPERATOR", DetailedStatusCode="21020"
        ),
    ]
    codes = _post_all(client, message_token(message), forms, django_capture_on_commit_callbacks)
    assert codes == [200, 200]
    message.refresh_from_db()
    assert message.status == status.SENT
    assert message.detailed_status_code == 20005
    late = message.events.order_by("pk").last()
    assert (late.status, late.applied, late.detailed_status_code) == (
        status.SUBMITTED,
        False,
        21020,
    )
    assert "already sent" in late.note
    assert [e[0] for e in events] == ["changed", "delivered"]


def test_intermediate_statuses_move_forward(client, events, django_capture_on_commit_callbacks):
    message = make_message()
    forms = [
        report("sid-a", "sending", DetailedStatusCode="21015"),
        report("sid-a", "submitted", DetailedStatusCode="21020"),
        report("sid-a", "sending", DetailedStatusCode="21015"),
        report("sid-a", "failed-dnd", DetailedStatusCode="23005", DetailedStatus="FAILED_DND"),
    ]
    _post_all(client, message_token(message), forms, django_capture_on_commit_callbacks)
    message.refresh_from_db()
    assert message.status == status.FAILED_DND
    assert list(message.events.values_list("applied", flat=True)) == [True, True, False, True]
    assert [e for e in events if e[0] == "changed"] == [
        ("changed", message.pk, status.QUEUED, status.SENDING),
        ("changed", message.pk, status.SENDING, status.SUBMITTED),
        ("changed", message.pk, status.SUBMITTED, status.FAILED_DND),
    ]
    assert [e for e in events if e[0] == "failed"] == [
        ("failed", message.pk, status.SUBMITTED, status.FAILED_DND)
    ]


def test_conflicting_terminal_statuses_keep_the_first(
    client, events, django_capture_on_commit_callbacks
):
    message = make_message()
    forms = [
        report("sid-a"),
        report("sid-a", "failed", DetailedStatus="FAILED_EXPIRED", DetailedStatusCode="23050"),
    ]
    codes = _post_all(client, message_token(message), forms, django_capture_on_commit_callbacks)
    assert codes == [200, 200]
    message.refresh_from_db()
    assert (message.status, message.detailed_status_code) == (status.SENT, 20005)
    assert list(message.events.values_list("status", "applied")) == [
        (status.SENT, True),
        (status.FAILED, False),
    ]
    assert [e[0] for e in events] == ["changed", "delivered"]


def test_unknown_detailed_code_is_stored_and_shown(client):
    message = make_message()
    form = report("sid-a", "failed", DetailedStatus="SOMETHING_NEW", DetailedStatusCode="23999")
    assert client.post(status_path(message_token(message)), form).status_code == 200
    message.refresh_from_db()
    assert message.status == status.FAILED
    assert message.detailed_status_code == 23999
    assert message.detailed_status == "SOMETHING_NEW"
    assert "23999" in message.detailed_status_description
    assert message.events.get().detailed_status_code == 23999


def test_unknown_status_word_is_recorded_not_applied(
    client, events, django_capture_on_commit_callbacks
):
    message = make_message()
    codes = _post_all(
        client,
        message_token(message),
        [report("sid-a", "Delivered-Maybe")],
        django_capture_on_commit_callbacks,
    )
    assert codes == [200]
    message.refresh_from_db()
    assert message.status == status.QUEUED
    event = message.events.get()
    assert (event.status, event.applied) == ("delivered-maybe", False)
    assert event.payload["Status"] == "Delivered-Maybe"
    assert events == []


@pytest.mark.parametrize("word", ["failed_dnd", "FAILED_DND", "Failed DND", " failed-dnd "])
def test_documented_status_spellings_are_normalised(
    client, events, django_capture_on_commit_callbacks, word
):
    # "failed_dnd" (underscore) is seen in the wild: it is Exotel's documented failed-dnd.
    message = make_message()
    form = report("sid-a", word, DetailedStatus="FAILED_REJECTED_DND", DetailedStatusCode="23005")
    codes = _post_all(client, message_token(message), [form], django_capture_on_commit_callbacks)
    assert codes == [200]
    message.refresh_from_db()
    assert message.status == status.FAILED_DND
    event = message.events.get()
    assert (event.status, event.applied) == (status.FAILED_DND, True)
    assert event.payload["Status"] == word  # the raw report is kept as received


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("failed_dnd", status.FAILED_DND),
        ("Failed DND", status.FAILED_DND),
        ("failed__dnd", status.FAILED_DND),
        ("SENT", status.SENT),
        (" Submitted ", status.SUBMITTED),
        ("faileddnd", "faileddnd"),  # not a separator variant: unknown, kept as given
        ("delivered_maybe", "delivered_maybe"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_exotel_status(given, stored):
    assert status.normalize_exotel_status(given) == stored


def test_status_is_case_insensitive(client):
    message = make_message()
    assert (
        client.post(status_path(message_token(message)), report("sid-a", " SENT ")).status_code
        == 200
    )
    message.refresh_from_db()
    assert message.status == status.SENT


def test_unknown_sid_with_valid_token_is_200_and_changes_nothing(
    client, two_of_each, events, django_capture_on_commit_callbacks
):
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        r1 = client.post(status_path(message_token(two_of_each.a)), report("never-seen"))
        r2 = client.post(status_path(batch_token(two_of_each.batch_a)), report("never-seen"))
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert snapshot() == before
    assert events == []


def test_callback_for_a_deleted_batch_message_is_harmless(client):
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
    token = batch_token(batch)
    batch.delete()
    assert client.post(status_path(token), report("whatever")).status_code == 200


# -- stored fields --------------------------------------------------------------------


def test_units_date_price_and_custom_field(client):
    message = make_message()
    form = report(
        "sid-a",
        SmsUnits="3",
        DateSent="2024-06-02 21:15:00",
        CustomField="order 42 / ünïcode",
        Price="0.450000",
        Extra="kept as well",
    )
    assert client.post(status_path(message_token(message)), form).status_code == 200
    message.refresh_from_db()
    assert message.sms_units == 3
    assert message.sent_at == datetime(2024, 6, 2, 15, 45, tzinfo=timezone.utc)
    assert message.price == Decimal("0.45")
    payload = message.events.get().payload
    assert payload["CustomField"] == "order 42 / ünïcode"
    assert payload["Extra"] == "kept as well"


@pytest.mark.parametrize(
    "date_sent",
    [
        "yesterday",
        "1970-01-01 05:30:00",
        "",
        "2024-13-45 99:99",
        "9999-12-31T23:59:59-14:00",  # parses, but has no UTC equivalent
        "x" * 100,
    ],
)
def test_unparsable_date_is_kept_in_the_payload_only(client, date_sent):
    message = make_message()
    form = report("sid-a", DateSent=date_sent, SmsUnits="", DetailedStatusCode="")
    assert client.post(status_path(message_token(message)), form).status_code == 200
    message.refresh_from_db()
    assert message.status == status.SENT
    assert message.sent_at is None
    assert message.sms_units is None
    assert message.detailed_status_code is None
    assert message.events.get().payload["DateSent"] == date_sent


@pytest.mark.parametrize(
    "price",
    [
        "999999.9999999",
        "1e9",
        "1e999999999",
        "-1e999999999",
        "NaN",
        "sNaN",
        "-Infinity",
        "abc",
        "1e-99999",
    ],
)
def test_out_of_range_or_junk_price_is_ignored(client, price):
    message = make_message()
    form = report("sid-a", Price=price)
    assert client.post(status_path(message_token(message)), form).status_code == 200
    message.refresh_from_db()
    assert message.status == status.SENT
    assert message.price in (None, Decimal("0"))
    assert message.events.get().payload["Price"] == price


def test_detailed_code_as_decimal_string(client):
    message = make_message()
    form = report("sid-a", DetailedStatusCode="20005.0")
    assert client.post(status_path(message_token(message)), form).status_code == 200
    message.refresh_from_db()
    assert message.detailed_status_code == 20005


# -- adopting a Sid whose send answer was lost ----------------------------------------


@pytest.mark.parametrize("st", [status.UNCERTAIN, status.SUBMITTING])
def test_single_message_adopts_the_sid(client, st, events, django_capture_on_commit_callbacks):
    message = make_message(sid=None, st=st)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(status_path(message_token(message)), report("lost-sid"))
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.sid, message.status) == ("lost-sid", status.SENT)
    assert message.submitted_at is not None
    assert [e[0] for e in events] == ["changed", "delivered"]
    assert events[0][2] == st


def test_single_message_does_not_adopt_another_number(client):
    message = make_message(sid=None, st=status.UNCERTAIN)
    before = snapshot()
    form = report("lost-sid", To="+919876543299")
    assert client.post(status_path(message_token(message)), form).status_code == 200
    assert snapshot() == before


@pytest.mark.parametrize("st", [status.QUEUED, status.PENDING, status.REJECTED])
def test_no_adoption_unless_uncertain_or_submitting(client, st):
    message = make_message(sid=None, st=st)
    before = snapshot()
    assert client.post(status_path(message_token(message)), report("lost-sid")).status_code == 200
    assert snapshot() == before


def test_message_with_a_sid_does_not_adopt_another(client):
    message = make_message(sid="known", st=status.UNCERTAIN)
    before = snapshot()
    assert client.post(status_path(message_token(message)), report("other")).status_code == 200
    assert snapshot() == before


def test_batch_message_adopts_the_sid_by_number(client):
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=3)
    rows = [make_message(sid=None, st=status.UNCERTAIN, to=n, batch=batch) for n in NUMBERS]
    token = batch_token(batch)
    # Exotel echoes national numbers as often as E.164 ones.
    assert client.post(status_path(token), report("lost-1", To="09876543211")).status_code == 200
    assert client.post(status_path(token), report("lost-2", To="+919876543212")).status_code == 200
    # Without a number nothing in a batch can be matched.
    assert client.post(status_path(token), report("lost-0", To="")).status_code == 200
    got = {m.pk: (m.sid, m.status) for m in SmsMessage.objects.filter(batch=batch)}
    assert got == {
        rows[0].pk: (None, status.UNCERTAIN),
        rows[1].pk: ("lost-1", status.SENT),
        rows[2].pk: ("lost-2", status.SENT),
    }
    # A later report for an adopted Sid finds its message by Sid.
    late = report("lost-1", "submitted", To="09876543211")
    assert client.post(status_path(token), late).status_code == 200
    assert SmsMessage.objects.get(pk=rows[1].pk).events.last().applied is False


def test_batch_adoption_stays_in_its_batch(client):
    other = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
    make_message(sid=None, st=status.UNCERTAIN, batch=other)
    mine = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=1)
    before = snapshot()
    assert client.post(status_path(batch_token(mine)), report("lost")).status_code == 200
    assert snapshot() == before


def _held(message: SmsMessage) -> list[tuple[str, str, bool]]:
    return [
        (e.payload["SmsSid"], e.status, e.applied)
        for e in message.events.filter(note__startswith=HELD_NOTE).order_by("pk")
    ]


def test_sid_is_never_guessed_between_two_messages_to_one_number(
    client, events, django_capture_on_commit_callbacks
):
    """Two texts to one number, both uncertain, callbacks in reverse order: no Sid swap."""
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_DYNAMIC, total=2)
    otp = make_message(sid=None, st=status.UNCERTAIN, batch=batch, body="Your OTP is 1234")
    shipping = make_message(sid=None, st=status.UNCERTAIN, batch=batch, body="Order shipped")
    token = batch_token(batch)
    failed = report(
        "sid-ship", "failed", DetailedStatus="FAILED_EXPIRED", DetailedStatusCode="23050"
    )
    codes = _post_all(
        client, token, [failed, report("sid-otp")], django_capture_on_commit_callbacks
    )
    assert codes == [200, 200]
    for message in (otp, shipping):
        message.refresh_from_db()
        assert (message.sid, message.status) == (None, status.UNCERTAIN)
        # Kept as unapplied history on each candidate, the posted Sid in its payload.
        assert _held(message) == [
            ("sid-ship", status.FAILED, False),
            ("sid-otp", status.SENT, False),
        ]
    assert events == []
    # A later report whose Sid is then known applies normally, to its own message only.
    SmsMessage.objects.filter(pk=otp.pk).update(sid="sid-otp")
    codes = _post_all(client, token, [report("sid-otp")], django_capture_on_commit_callbacks)
    assert codes == [200]
    otp.refresh_from_db()
    shipping.refresh_from_db()
    assert (otp.status, shipping.status) == (status.SENT, status.UNCERTAIN)
    assert [e[:2] for e in events] == [("changed", otp.pk), ("delivered", otp.pk)]


def test_a_report_adopts_once_only_one_candidate_is_left(client):
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=2)
    first = make_message(sid=None, st=status.UNCERTAIN, batch=batch)
    second = make_message(sid=None, st=status.UNCERTAIN, batch=batch)
    token = batch_token(batch)
    assert client.post(status_path(token), report("sid-y", "submitted")).status_code == 200
    assert SmsMessage.objects.filter(sid="sid-y").count() == 0
    # Reconciliation or a human settles the first; the second is then the only candidate.
    SmsMessage.objects.filter(pk=first.pk).update(sid="sid-x", status=status.SENT)
    assert client.post(status_path(token), report("sid-y", "failed")).status_code == 200
    second.refresh_from_db()
    assert (second.sid, second.status) == ("sid-y", status.FAILED)


def test_message_token_adopts_only_for_the_messages_number(client):
    """A token alone does not let its holder attach a Sid: the posted To must match."""
    message = make_message(sid=None, st=status.UNCERTAIN)
    before = snapshot()
    form = report("attacker-sid")
    del form["To"]
    assert client.post(status_path(message_token(message)), form).status_code == 200
    assert snapshot() == before


def _send_bulk_posting_early(monkeypatch, client, index: int, before_return=None):
    """Exotel's status callback for recipient ``index`` arrives before the send's answer."""
    original = locmem.LocmemBackend.send_bulk
    answers = []

    def send_bulk(self, to, body, sender, **options):
        result = original(self, to, body, sender, **options)
        answers.append(result)
        if before_return is not None:
            before_return(result)
        entry = result.results[index]
        path = local_path(options["status_callback"])
        assert client.post(path, report(entry.sid, To=entry.to)).status_code == 200
        return result

    monkeypatch.setattr(locmem.LocmemBackend, "send_bulk", send_bulk)
    return answers


def test_early_callback_for_a_number_repeated_in_the_chunk_waits_for_the_answer(
    client, send_bulk, monkeypatch, events
):
    to = [NUMBERS[0], NUMBERS[1], NUMBERS[0], NUMBERS[2], NUMBERS[0], NUMBERS[1]]
    answers = _send_bulk_posting_early(monkeypatch, client, index=2)
    batch = send_bulk(to=to)
    rows = list(batch.messages.order_by("pk"))
    sids = [r.sid for r in answers[0].results]
    # Every row has its own Sid from the answer: none left submitting, none holds another's.
    assert [(m.sid, m.status) for m in rows] == [
        (sid, status.SENT if i == 2 else status.QUEUED) for i, sid in enumerate(sids)
    ]
    # The report was held on the three candidates, then applied to its own message only.
    for i in (0, 4):
        assert list(rows[i].events.values_list("source", "status", "applied", "note")) == [
            ("callback", status.SENT, False, NOT_THIS_NOTE),
            ("api", status.QUEUED, True, ""),
        ]
        assert rows[i].events.first().payload["SmsSid"] == sids[2]
    assert list(rows[2].events.values_list("source", "status", "applied", "note")) == [
        ("callback", status.SENT, False, RELEASED_NOTE),
        ("api", status.QUEUED, True, ""),
        ("callback", status.SENT, True, ""),
    ]
    assert [e for e in events if e[0] != "changed"] == [
        ("delivered", rows[2].pk, status.QUEUED, status.SENT)
    ]


def test_held_report_goes_to_the_last_candidate_once_the_others_have_sids(
    client, monkeypatch, events, django_capture_on_commit_callbacks
):
    """An uncertain row's callback comes while a row to the same number is in flight."""
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=2)
    in_flight = make_message(sid=None, st=status.PENDING, batch=batch)
    lost = make_message(sid=None, st=status.UNCERTAIN, batch=batch)
    original = locmem.LocmemBackend.send_bulk

    def send_bulk(self, to, body, sender, **options):
        result = original(self, to, body, sender, **options)
        path = local_path(options["status_callback"])
        assert client.post(path, report("sid-of-lost")).status_code == 200
        return result

    monkeypatch.setattr(locmem.LocmemBackend, "send_bulk", send_bulk)
    with django_capture_on_commit_callbacks(execute=True):
        sending.deliver_batch(batch.pk)
    lost.refresh_from_db()
    in_flight.refresh_from_db()
    assert (lost.sid, lost.status) == ("sid-of-lost", status.SENT)
    assert (in_flight.sid, in_flight.status) == (locmem.outbox[0].sid, status.QUEUED)
    assert list(in_flight.events.values_list("source", "applied", "note")) == [
        ("callback", False, NOT_THIS_NOTE),
        ("api", True, ""),
    ]
    assert list(lost.events.values_list("source", "applied", "note")) == [
        ("callback", False, RELEASED_NOTE),
        ("callback", True, ""),
    ]
    assert [e for e in events if e[0] == "delivered"] == [
        ("delivered", lost.pk, status.UNCERTAIN, status.SENT)
    ]


def test_a_sid_held_by_another_row_is_given_back_not_crashed_on(
    client, send_bulk, monkeypatch, events
):
    """Defence in depth: should a row hold a Sid Exotel's answer gives to another, the
    answer wins, the holder gives it back with a note, and the chunk is recorded."""

    def misattribute(result):
        # As a guessing adoption did: the first row took the third recipient's Sid.
        holder = SmsMessage.objects.filter(to=NUMBERS[0]).order_by("pk").first()
        SmsMessage.objects.filter(pk=holder.pk).update(
            sid=result.results[2].sid, status=status.SENT
        )

    answers = _send_bulk_posting_early(monkeypatch, client, 1, before_return=misattribute)
    batch = send_bulk(to=[NUMBERS[0], NUMBERS[1], NUMBERS[0]])
    rows = list(batch.messages.order_by("pk"))
    sids = [r.sid for r in answers[0].results]
    assert [(m.sid, m.status) for m in rows] == [
        (None, status.SENT),
        (sids[1], status.SENT),
        (sids[2], status.QUEUED),
    ]
    note = rows[0].events.get(source=StatusEvent.SOURCE_LOCAL).note
    assert note.startswith(f"Sid {sids[2]} given back") and str(rows[2].pk) in note


# -- clicks ---------------------------------------------------------------------------


def click_form(sms_sid: str, **extra: str) -> dict[str, str]:
    form = {
        "sid": "short-1",
        "short_url": "https://exo.tl/abc",
        "short_code": "abc",
        "long_url": "https://shop.example.com/orders/42?utm=sms",
        "Tracking": "true",
        "custom_field": "order-42",
        "Total_clicks": "3",
        "Sms_sid": sms_sid,
        "To": "09876543210",
        "city": "Bengaluru",
        "Country": "India",
        "IP": "203.0.113.7",
        "Postal code": "560001",
        "OS_name": "Android",
        "Device_name": "Pixel 8",
        "Platform type": "mobile",
    }
    form.update(extra)
    return form


def test_click_through_the_url_it_was_sent_with(client, send):
    message = send(
        body="Track https://shop.example.com/orders/42",
        shorten_urls=True,
        shorten_url_params={"tracking": True},
    )
    url = locmem.outbox[0].options["shorten_url_params"]["click_tracking_callback_url"]
    response = client.post(local_path(url), click_form(message.sid))
    assert response.status_code == 200
    click = ClickEvent.objects.get()
    assert click.message_id == message.pk
    assert (click.sms_sid, click.short_url, click.total_clicks) == (
        message.sid,
        "https://exo.tl/abc",
        3,
    )
    assert click.long_url == "https://shop.example.com/orders/42?utm=sms"
    assert (click.ip, click.city, click.country) == ("203.0.113.7", "Bengaluru", "India")
    assert (click.os_name, click.device_name) == ("Android", "Pixel 8")
    assert click.payload == click_form(message.sid)


def test_batch_click_links_its_message_or_none(client, two_of_each):
    token = batch_token(two_of_each.batch_a, callbacks.CLICK_SALT)
    assert client.post(click_path(token), click_form("batch-A-1")).status_code == 200
    assert client.post(click_path(token), click_form("unknown-sid")).status_code == 200
    assert client.post(click_path(token), click_form("", Total_clicks="")).status_code == 200
    clicks = list(ClickEvent.objects.order_by("pk").values_list("message__sid", "total_clicks"))
    assert clicks == [("batch-A-1", 3), (None, 3), (None, None)]


def test_message_click_without_a_known_sid_links_the_token_message(client):
    message = make_message(sid=None, st=status.UNCERTAIN)
    token = message_token(message, callbacks.CLICK_SALT)
    assert client.post(click_path(token), click_form("")).status_code == 200
    assert ClickEvent.objects.get().message_id == message.pk


@pytest.mark.parametrize(
    "make_token",
    [
        lambda s: "forged",
        lambda s: message_token(s.a),  # a status token is not a click token
    ],
)
def test_forged_click_is_403(client, two_of_each, make_token):
    before = snapshot()
    response = client.post(click_path(make_token(two_of_each)), click_form("single-a"))
    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(
    "make_token",
    [
        lambda s: message_token(s.b, callbacks.CLICK_SALT),
        lambda s: batch_token(s.batch_b, callbacks.CLICK_SALT),
    ],
)
def test_out_of_scope_click_is_answered_like_an_unknown_sid_and_not_recorded(
    client, two_of_each, make_token
):
    token = make_token(two_of_each)
    before = snapshot()
    cross = client.post(click_path(token), click_form("single-a"))
    assert snapshot() == before
    unknown = client.post(click_path(token), click_form("never-seen"))
    assert (
        (cross.status_code, cross.content)
        == (unknown.status_code, unknown.content)
        == (
            200,
            b"OK",
        )
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"Total_clicks": "many"},
        {"Total_clicks": "-2"},
        {"Sms_sid": "has space"},
        {"short_url": "https://exo.tl/" + "a" * 500},
        {"IP": "1" * 65},
        {"city": "\x00"},
    ],
)
def test_malformed_click_is_400(client, extra):
    message = make_message()
    token = message_token(message, callbacks.CLICK_SALT)
    before = snapshot()
    assert client.post(click_path(token), click_form("sid-a", **extra)).status_code == 400
    assert snapshot() == before
