"""The manager API (the one door): single, static bulk and dynamic bulk, locmem and sandbox."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.db import transaction

from django_exotel_sms import callbacks, phone, sending, status, tasks
from django_exotel_sms.backends import locmem
from django_exotel_sms.models import (
    DltEntity,
    SenderId,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    StatusEvent,
)

pytestmark = pytest.mark.django_db

IN_NUMBER = "+919876543210"
SETTINGS_ENTITY = "1101000000000000001"  # tests/settings.py
CALLBACK_BASE = "https://sms.example.com/exotel/"  # tests/settings.py
SANDBOX_CALLBACK_BASE = "http://127.0.0.1:9/exotel/"  # set by the sandbox fixture
SECRETS = ("sandboxkey", "sandboxtoken", "***")  # "***" is the sandbox's redaction mark


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+9198765{i:05d}" for i in range(start, start + count)]


class Boom(Exception):
    pass


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    """``with on_commit(): ...`` runs the on-commit callbacks when the block ends."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def exotel(settings: Any) -> Callable[..., None]:
    def override(**changes: Any) -> None:
        settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, **changes}

    return override


@pytest.fixture
def otp() -> SmsTemplate:
    entity = DltEntity.objects.create(entity_id="1101000000000000055", name="Acme")
    sender = SenderId.objects.create(header="ACMEIN", entity=entity)
    return SmsTemplate.objects.create(
        name="otp",
        body="Your OTP is {#numeric#}. Do not share it.",
        dlt_template_id="1107000000000000001",
        sms_type="transactional",
        sender=sender,
    )


# -- single send ----------------------------------------------------------------------------


def test_single_send_with_locmem(on_commit: Callable[[], Any]) -> None:
    with on_commit():
        message = SmsMessage.objects.send(
            "09876543210", "Hello there", custom_field="order-7", send_async=False
        )
        assert locmem.outbox == []  # nothing leaves before the commit
    assert len(locmem.outbox) == 1
    entry = locmem.outbox[0]
    assert (entry.to, entry.body, entry.sender) == (IN_NUMBER, "Hello there", "EXOTEL")
    assert entry.options["status_callback"].startswith(CALLBACK_BASE + "status/")
    assert entry.options["dlt_entity_id"] == SETTINGS_ENTITY
    assert entry.options["custom_field"] == "order-7"
    assert entry.options["encoding_type"] == "plain"
    message.refresh_from_db()
    assert (message.status, message.sid, message.attempts) == (status.QUEUED, entry.sid, 1)
    assert list(message.events.values_list("status", "source")) == [
        (status.QUEUED, StatusEvent.SOURCE_API)
    ]


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("a" * 160, "plain", 1),
        ("a" * 161, "plain", 2),
        ("a" * 306, "plain", 2),
        ("a" * 307, "plain", 3),
        ("€" * 80, "plain", 1),  # extension characters cost two septets
        ("€" * 81, "plain", 2),
        ("न" * 70, "unicode", 1),
        ("न" * 71, "unicode", 2),
        ("Hi 😀" + "a" * 66, "unicode", 2),  # the emoji is two UTF-16 units
    ],
)
def test_encoding_and_segments_are_stored(body: str, encoding: str, segments: int) -> None:
    message = SmsMessage.objects.send(IN_NUMBER, body)
    message.refresh_from_db()
    assert (message.encoding, message.segments) == (encoding, segments)


def test_forced_unicode_encoding_is_stored_and_sent(on_commit: Callable[[], Any]) -> None:
    with on_commit():
        message = SmsMessage.objects.send(IN_NUMBER, "a" * 71, encoding="unicode", send_async=False)
    message.refresh_from_db()
    assert (message.encoding, message.segments) == ("unicode", 2)
    assert locmem.outbox[0].options["encoding_type"] == "unicode"


def test_send_async_enqueues_one_task_on_commit(on_commit: Callable[[], Any]) -> None:
    with mock.patch.object(tasks.send_message, "apply_async") as apply_async:
        with on_commit():
            message = SmsMessage.objects.send(IN_NUMBER, "Hello")
            apply_async.assert_not_called()  # not before the commit
        apply_async.assert_called_once_with((message.pk,))
    assert locmem.outbox == []  # the task was only enqueued
    assert SmsMessage.objects.get(pk=message.pk).status == status.PENDING


def test_rolled_back_send_enqueues_nothing(on_commit: Callable[[], Any]) -> None:
    with (
        mock.patch.object(tasks.send_message, "apply_async") as apply_async,
        on_commit() as cbs,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        SmsMessage.objects.send(IN_NUMBER, "Hello")
        raise Boom
    apply_async.assert_not_called()
    assert cbs == []
    assert not SmsMessage.objects.exists()


def test_enqueue_failure_keeps_the_row_pending(on_commit: Callable[[], Any]) -> None:
    broken = mock.patch.object(tasks.send_message, "apply_async", side_effect=OSError("no broker"))
    with broken, on_commit():
        message = SmsMessage.objects.send(IN_NUMBER, "Hello")
    assert SmsMessage.objects.get(pk=message.pk).status == status.PENDING


def test_synchronous_send_uses_the_tasks_code_path(on_commit: Callable[[], Any]) -> None:
    spy = mock.Mock(wraps=sending.deliver_message)
    with (
        mock.patch.object(sending, "deliver_message", spy),
        mock.patch.object(tasks.send_message, "apply_async") as apply_async,
    ):
        with on_commit():
            message = SmsMessage.objects.send(IN_NUMBER, "Hello", send_async=False)
        spy.assert_called_once_with(message.pk)
        apply_async.assert_not_called()
        assert len(locmem.outbox) == 1

        # The task body is the same function.
        other = SmsMessage.objects.send(IN_NUMBER, "Again")
        tasks.send_message(other.pk)
    assert spy.call_args_list == [mock.call(message.pk), mock.call(other.pk)]
    assert [e.body for e in locmem.outbox] == ["Hello", "Again"]


def test_synchronous_send_outside_a_transaction_returns_the_sent_row(
    transactional_db: Any,
) -> None:
    message = SmsMessage.objects.send(IN_NUMBER, "Hello", send_async=False)
    assert message.status == status.QUEUED
    assert message.sid == locmem.outbox[0].sid


# -- bulk with locmem -----------------------------------------------------------------------


def test_static_bulk_of_250_with_locmem(on_commit: Callable[[], Any]) -> None:
    to = numbers(250)
    with on_commit():
        batch = SmsMessage.objects.send_bulk(
            to=to, body="Sale today", name="sale", send_async=False
        )
    assert (batch.kind, batch.total, batch.name) == (SmsBatch.KIND_STATIC, 250, "sale")
    assert SmsBatch.objects.get(pk=batch.pk).total == 250
    assert [e.to for e in locmem.outbox] == to
    assert {(e.body, e.sender) for e in locmem.outbox} == {("Sale today", "EXOTEL")}
    for url in {e.options["status_callback"] for e in locmem.outbox}:
        assert url.startswith(CALLBACK_BASE + "status/")
        token = url[len(CALLBACK_BASE + "status/") : -1]
        assert callbacks.read_token(token) == callbacks.CallbackScope(
            callbacks.BATCH, batch.pk, created=callbacks.created_stamp(batch.created_at)
        )
    assert batch.status_counts() == {status.QUEUED: 250}
    progress = batch.progress()
    assert (progress["total"], progress["accepted"], progress["final"], progress["done"]) == (
        250,
        250,
        0,
        False,
    )
    assert set(batch.messages.values_list("sid", flat=True)) == {e.sid for e in locmem.outbox}


def test_dynamic_bulk_of_150_with_locmem(on_commit: Callable[[], Any]) -> None:
    to = numbers(150)
    messages = [{"to": n, "body": f"Hi #{i}"} for i, n in enumerate(to)]
    messages[3]["sender"] = "ACMEIN"
    with on_commit():
        batch = SmsMessage.objects.send_bulk(messages=messages, send_async=False)
    assert (batch.kind, batch.total) == (SmsBatch.KIND_DYNAMIC, 150)
    assert [(e.to, e.body) for e in locmem.outbox] == [(n, f"Hi #{i}") for i, n in enumerate(to)]
    assert locmem.outbox[3].sender == "ACMEIN"
    assert {e.sender for i, e in enumerate(locmem.outbox) if i != 3} == {"EXOTEL"}
    assert batch.status_counts() == {status.QUEUED: 150}
    rows = dict(batch.messages.values_list("to", "body"))
    assert rows[to[149]] == "Hi #149"


def test_bulk_enqueues_batch_parallelism_tasks(
    on_commit: Callable[[], Any], exotel: Callable[..., None]
) -> None:
    exotel(BATCH_PARALLELISM=3)
    with mock.patch.object(tasks.send_batch, "apply_async") as apply_async:
        with on_commit():
            batch = SmsMessage.objects.send_bulk(to=numbers(5), body="Hi")
            apply_async.assert_not_called()
        assert apply_async.call_args_list == [mock.call((batch.pk,))] * 3
    assert batch.status_counts() == {status.PENDING: 5}


def test_rolled_back_bulk_enqueues_nothing(on_commit: Callable[[], Any]) -> None:
    with (
        mock.patch.object(tasks.send_batch, "apply_async") as apply_async,
        on_commit(),
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        SmsMessage.objects.send_bulk(to=numbers(5), body="Hi")
        raise Boom
    apply_async.assert_not_called()
    assert not SmsBatch.objects.exists() and not SmsMessage.objects.exists()


def test_synchronous_bulk_uses_the_tasks_code_path(on_commit: Callable[[], Any]) -> None:
    spy = mock.Mock(wraps=sending.deliver_batch)
    with mock.patch.object(sending, "deliver_batch", spy), on_commit():
        batch = SmsMessage.objects.send_bulk(to=numbers(3), body="Hi", send_async=False)
    spy.assert_called_once_with(batch.pk)
    assert len(locmem.outbox) == 3


def test_static_bulk_streams_a_generator_of_1000_numbers(on_commit: Callable[[], Any]) -> None:
    saved_when_asked: list[int] = []

    def generate() -> Iterator[str]:
        for i in range(1000):
            if i % 100 == 0:
                saved_when_asked.append(SmsMessage.objects.count())
            yield f"+9198{i:08d}"

    with mock.patch.object(tasks.send_batch, "apply_async") as apply_async, on_commit():
        batch = SmsMessage.objects.send_bulk(to=generate(), body="Hi")
    # Each chunk of 100 is inserted before the next is read: the input is never listed.
    assert saved_when_asked == list(range(0, 1000, 100))
    assert batch.total == SmsBatch.objects.get(pk=batch.pk).total == 1000
    assert batch.status_counts() == {status.PENDING: 1000}
    assert set(batch.messages.values_list("to", flat=True)) == {
        f"+9198{i:08d}" for i in range(1000)
    }
    assert apply_async.call_count == 2  # BATCH_PARALLELISM default


def test_bulk_shared_options_reach_every_message(on_commit: Callable[[], Any]) -> None:
    with on_commit():
        batch = SmsMessage.objects.send_bulk(
            to=numbers(2),
            body="Hi",
            sender="600123",
            dlt_entity_id="1101000000000000099",
            dlt_template_id="1107000000000000003",
            sms_type="promotional",
            priority="normal",
            custom_field="campaign-1",
            send_async=False,
        )
    rows = set(
        batch.messages.values_list(
            "sender", "dlt_entity_id", "dlt_template_id", "sms_type", "priority", "custom_field"
        )
    )
    expected = (
        "600123",
        "1101000000000000099",
        "1107000000000000003",
        "promotional",
        "normal",
        "campaign-1",
    )
    assert rows == {expected}
    options = locmem.outbox[0].options
    assert (options["dlt_entity_id"], options["dlt_template_id"], options["sms_type"]) == (
        "1101000000000000099",
        "1107000000000000003",
        "promotional",
    )


def test_bulk_created_by_is_recorded(django_user_model: Any) -> None:
    user = django_user_model.objects.create(username="ops")
    batch = SmsMessage.objects.send_bulk(to=numbers(1), body="Hi", created_by=user)
    assert SmsBatch.objects.get(pk=batch.pk).created_by == user


# -- templates ------------------------------------------------------------------------------


def test_template_send(otp: SmsTemplate, on_commit: Callable[[], Any]) -> None:
    with on_commit():
        message = otp.send("9876543210", ["482913"], send_async=False)
    message.refresh_from_db()
    assert message.body == "Your OTP is 482913. Do not share it."
    assert (message.template, message.dlt_template_id, message.sms_type) == (
        otp,
        "1107000000000000001",
        "transactional",
    )
    # The template's sender supplies the header and, through its entity, the DLT entity.
    assert (message.sender, message.dlt_entity_id) == ("ACMEIN", "1101000000000000055")
    entry = locmem.outbox[0]
    assert (entry.to, entry.body, entry.sender) == (IN_NUMBER, message.body, "ACMEIN")
    assert entry.options["dlt_template_id"] == "1107000000000000001"
    assert entry.options["dlt_entity_id"] == "1101000000000000055"
    assert entry.options["sms_type"] == "transactional"


def test_template_entity_wins_over_its_senders(otp: SmsTemplate) -> None:
    otp.entity = DltEntity.objects.create(entity_id="1101000000000000066", name="Parent")
    otp.save()
    assert otp.send(IN_NUMBER, {"1": "1"}).dlt_entity_id == "1101000000000000066"
    # Explicit options still win over the template's defaults.
    message = otp.send(IN_NUMBER, ["1"], sender="OTHERS", dlt_entity_id="1101000000000000011")
    assert (message.sender, message.dlt_entity_id) == ("OTHERS", "1101000000000000011")


def test_template_send_bulk(otp: SmsTemplate, on_commit: Callable[[], Any]) -> None:
    to = numbers(120)
    with on_commit():
        batch = otp.send_bulk(
            ({"to": n, "context": [str(1000 + i)]} for i, n in enumerate(to)),
            name="otps",
            send_async=False,
        )
    assert (batch.kind, batch.total, batch.name) == (SmsBatch.KIND_DYNAMIC, 120, "otps")
    assert [(e.to, e.body) for e in locmem.outbox] == [
        (n, f"Your OTP is {1000 + i}. Do not share it.") for i, n in enumerate(to)
    ]
    assert {(e.sender, e.options["dlt_template_id"]) for e in locmem.outbox} == {
        ("ACMEIN", "1107000000000000001")
    }
    assert set(batch.messages.values_list("template", flat=True)) == {otp.pk}


def test_static_bulk_with_a_template_renders_once(otp: SmsTemplate) -> None:
    batch = SmsMessage.objects.send_bulk(to=numbers(3), template="otp", context=["55"])
    assert batch.template == otp
    assert set(batch.messages.values_list("body", "sender", "dlt_template_id")) == {
        ("Your OTP is 55. Do not share it.", "ACMEIN", "1107000000000000001")
    }


# -- against the sandbox --------------------------------------------------------------------


def _form_keys(form: list[tuple[str, str]]) -> Counter[str]:
    return Counter(key for key, _ in form)


def _assert_no_credentials(sandbox: Any) -> None:
    for request in sandbox.requests:
        texts = [request.path, request.query, *(k + "=" + v for k, v in request.form)]
        texts += list(request.headers.values())
        for text in texts:
            for secret in SECRETS:
                assert secret not in text, (secret, text)
        assert "authorization" not in {k.lower() for k in request.headers}


def test_single_send_against_the_sandbox(sandbox: Any, on_commit: Callable[[], Any]) -> None:
    with on_commit():
        message = SmsMessage.objects.send("09876543210", "Hello", send_async=False)
    message.refresh_from_db()
    (request,) = sandbox.requests
    assert (request.method, request.path, request.status) == (
        "POST",
        "/v1/Accounts/sandbox/Sms/send.json",
        200,
    )
    form = dict(request.form)
    assert (form["To"], form["Body"], form["From"]) == (IN_NUMBER, "Hello", "EXOTEL")
    assert form["DltEntityId"] == SETTINGS_ENTITY
    assert form["StatusCallback"].startswith(SANDBOX_CALLBACK_BASE + "status/")
    stored = sandbox.message(message.sid)
    assert stored.to == "09876543210"  # Exotel's national echo ...
    assert stored.number == message.to == IN_NUMBER  # ... is still this message
    assert message.status == status.QUEUED
    _assert_no_credentials(sandbox)


def test_static_bulk_of_250_against_the_sandbox(sandbox: Any, on_commit: Callable[[], Any]) -> None:
    to = numbers(250)
    sandbox.set_outcome(to[56], "invalid")  # refused in the 207 answer, at its position
    with on_commit():
        batch = SmsMessage.objects.send_bulk(to=to, body="Sale today", send_async=False)
    requests = sandbox.requests
    assert [len(r.recipients) for r in requests] == [100, 100, 50]
    for request, chunk in zip(requests, (to[:100], to[100:200], to[200:]), strict=True):
        assert request.path == "/v1/Accounts/sandbox/Sms/send.json"
        keys = _form_keys(request.form)
        assert keys["To[]"] == len(chunk) and "To" not in keys
        assert [v for k, v in request.form if k == "To[]"] == chunk
        assert (keys["From"], keys["Body"], keys["DltEntityId"], keys["StatusCallback"]) == (
            1,
            1,
            1,
            1,
        )
    assert [r.status for r in requests] == [207, 200, 200]
    _assert_no_credentials(sandbox)

    assert batch.total == 250
    assert batch.status_counts() == {status.QUEUED: 249, status.REJECTED: 1}
    rejected = batch.messages.get(status=status.REJECTED)
    assert (rejected.to, rejected.sid, rejected.detailed_status_code) == (to[56], None, 23010)
    _assert_matched_back(sandbox, batch)


def test_dynamic_bulk_of_150_against_the_sandbox(
    sandbox: Any, on_commit: Callable[[], Any]
) -> None:
    to = numbers(150)
    messages = [{"to": n, "body": f"Your code {i}"} for i, n in enumerate(to)]
    with on_commit():
        batch = SmsMessage.objects.send_bulk(messages=messages, send_async=False)
    requests = sandbox.requests
    assert [len(r.recipients) for r in requests] == [100, 50]
    offset = 0
    for request in requests:
        assert request.path == "/v1/Accounts/sandbox/Sms/bulksend.json"
        form = dict(request.form)
        count = len(request.recipients)
        assert count <= 100
        for i in range(count):
            assert form[f"Messages[{i}][To]"] == to[offset + i]
            assert form[f"Messages[{i}][Body]"] == f"Your code {offset + i}"
        assert f"Messages[{count}][To]" not in form
        assert "To[]" not in form and "To" not in form
        assert form["DltEntityId"] == SETTINGS_ENTITY
        assert form["StatusCallback"].startswith(SANDBOX_CALLBACK_BASE + "status/")
        offset += count
    assert offset == 150
    _assert_no_credentials(sandbox)
    assert batch.status_counts() == {status.QUEUED: 150}
    _assert_matched_back(sandbox, batch)


def _assert_matched_back(sandbox: Any, batch: SmsBatch) -> None:
    """Exotel echoes Indian numbers as 0XXXXXXXXXX; every Sid still lands on its own row."""
    stored = sandbox.messages
    accepted = batch.messages.exclude(sid=None)
    assert accepted.count() == len(stored)
    for message in accepted:
        echo = stored[message.sid]
        assert echo.to == "0" + message.to[-10:]
        assert phone.match_key(echo.to) == echo.number == message.to


def test_template_send_bulk_against_the_sandbox(
    otp: SmsTemplate, sandbox: Any, on_commit: Callable[[], Any]
) -> None:
    to = numbers(3)
    with on_commit():
        otp.send_bulk([{"to": n, "context": [str(i)]} for i, n in enumerate(to)], send_async=False)
    (request,) = sandbox.requests
    form = dict(request.form)
    assert form["Messages[2][Body]"] == "Your OTP is 2. Do not share it."
    assert form["Messages[2][DltTemplateId]"] == "1107000000000000001"
    assert form["Messages[2][SmsType]"] == "transactional"
    assert form["Messages[2][From]"] == "ACMEIN"
    assert form["DltEntityId"] == "1101000000000000055"
