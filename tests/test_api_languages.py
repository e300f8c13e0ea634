"""``language`` over the REST API: a template's variant picked as the manager picks it.

Each send goes over HTTP, is then sent in this process to the local Exotel stand-in, and
the stand-in's log is what is checked: the variant's text, its DLT template id, UCS-2.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.test import APIClient

from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate, SmsTemplateVariant
from django_exotel_sms.sending import deliver_batch, deliver_message, run_until_done

from .helpers import sent_messages

pytestmark = pytest.mark.django_db

EN_ID, HI_ID, HI_IN_ID = "1107000000000000401", "1107000000000000402", "1107000000000000403"
EN = "Dear {#var#}, your order {#numeric#} has shipped. - ACME"
HI = "प्रिय {#var#}, आपका ऑर्डर {#numeric#} भेज दिया गया है। - ACME"
HI_IN = "नमस्ते {#var#}, ऑर्डर {#numeric#} रवाना। - ACME"


@pytest.fixture
def enqueued() -> Iterator[list[tuple[str, int]]]:
    """Celery is not running: record what the API enqueued, to send it here afterwards."""
    calls: list[tuple[str, int]] = []
    with (
        mock.patch(
            "django_exotel_sms.tasks.send_message.apply_async",
            side_effect=lambda args, **kw: calls.append(("message", args[0])),
        ),
        mock.patch(
            "django_exotel_sms.tasks.send_batch.apply_async",
            side_effect=lambda args, **kw: calls.append(("batch", args[0])),
        ),
    ):
        yield calls


@pytest.fixture
def api(django_user_model: Any, enqueued: Any) -> APIClient:
    user = django_user_model.objects.create_user(username="sender")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_exotel_sms", codename="add_smsmessage"
        )
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def shipped() -> SmsTemplate:
    tpl = SmsTemplate.objects.create(name="shipped", body=EN, dlt_template_id=EN_ID)
    SmsTemplateVariant.objects.create(template=tpl, language="hi", body=HI, dlt_template_id=HI_ID)
    return tpl


@pytest.fixture
def post(
    api: APIClient, enqueued: list[tuple[str, int]], django_capture_on_commit_callbacks: Any
) -> Any:
    """POST as JSON; on success, send what it enqueued through the stand-in."""

    def run(name: str, data: dict[str, Any], *args: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.post(reverse(f"exotel-sms-{name}", args=args), data, format="json")
        while enqueued:
            kind, pk = enqueued.pop(0)
            run_until_done(
                (lambda: deliver_message(pk)) if kind == "message" else (lambda: deliver_batch(pk))
            )
        return response

    return run


def _by_number(sandbox: Any) -> dict[str, dict[str, str]]:
    return {m["To"]: m for m in sent_messages(sandbox)}


def test_send_one_in_hindi_uses_its_text_dlt_id_and_ucs2(
    sandbox: Any, shipped: SmsTemplate, post: Any
) -> None:
    response = post(
        "message-list",
        {"to": "+919876500001", "template": "shipped", "context": ["Asha", "42"], "language": "hi"},
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["dlt_template_id"], data["encoding"]) == (HI_ID, "unicode")
    assert data["body"] == "प्रिय Asha, आपका ऑर्डर 42 भेज दिया गया है। - ACME"
    sent = _by_number(sandbox)["+919876500001"]
    assert sent["Body"] == data["body"]
    assert sent["DltTemplateId"] == HI_ID
    assert sent["EncodingType"] == "unicode"


def test_fallback_chain_hi_in_to_hi_to_the_template(
    sandbox: Any, shipped: SmsTemplate, post: Any, settings: Any
) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "TEMPLATE_LANGUAGE_FALLBACK": {"mr": ["hi"]}}
    messages = [
        {"to": "+919876500011", "template": "shipped", "context": ["A", "1"], "language": "hi-IN"},
        {"to": "+919876500012", "template": "shipped", "context": ["B", "2"], "language": "mr"},
        {"to": "+919876500013", "template": "shipped", "context": ["C", "3"], "language": "ta"},
        {"to": "+919876500014", "template": "shipped", "context": ["D", "4"]},
    ]
    response = post("message-bulk", {"messages": messages})
    assert response.status_code == 201, response.json()
    sent = _by_number(sandbox)
    assert len(sent) == 4
    # A bulk request leaves the encoding to Exotel's detection: the saved row tells it.
    encodings = dict(SmsMessage.objects.values_list("to", "encoding"))
    # hi-IN has no variant of its own -> hi; mr -> hi by the setting.
    for number in ("+919876500011", "+919876500012"):
        assert sent[number]["DltTemplateId"] == HI_ID
        assert sent[number]["Body"].startswith("प्रिय ")
        assert encodings[number] == "unicode"
    # ta has no variant and no fallback; no language at all: the template's own text.
    for number in ("+919876500013", "+919876500014"):
        assert sent[number]["DltTemplateId"] == EN_ID
        assert sent[number]["Body"].startswith("Dear ")
        assert encodings[number] == "plain"


def test_a_variant_of_its_own_wins_over_the_fallback(
    sandbox: Any, shipped: SmsTemplate, post: Any
) -> None:
    SmsTemplateVariant.objects.create(
        template=shipped, language="hi-IN", body=HI_IN, dlt_template_id=HI_IN_ID
    )
    response = post(
        "template-send",
        {
            "recipients": [
                {"to": "+919876500021", "context": ["A", "1"]},
                {"to": "+919876500022", "context": ["B", "2"], "language": "hi"},
                {"to": "+919876500023", "context": ["C", "3"], "language": "en"},
            ],
            "language": "hi_IN",  # for recipients without their own
        },
        shipped.pk,
    )
    assert response.status_code == 201, response.json()
    sent = _by_number(sandbox)
    assert sent["+919876500021"]["Body"] == "नमस्ते A, ऑर्डर 1 रवाना। - ACME"
    assert sent["+919876500021"]["DltTemplateId"] == HI_IN_ID
    assert sent["+919876500022"]["DltTemplateId"] == HI_ID
    assert sent["+919876500023"]["DltTemplateId"] == EN_ID


def test_same_text_bulk_and_template_send_one_take_a_language(
    sandbox: Any, shipped: SmsTemplate, post: Any
) -> None:
    bulk = post(
        "message-bulk",
        {
            "to": ["+919876500031", "+919876500032"],
            "template": shipped.pk,
            "context": ["Asha", "7"],
            "language": "hi",
        },
    )
    one = post(
        "template-send",
        {"to": "+919876500033", "context": ["Ravi", "8"], "language": "hi"},
        shipped.pk,
    )
    assert bulk.status_code == 201 and one.status_code == 201, (bulk.json(), one.json())
    sent = sent_messages(sandbox)
    assert sorted(m["To"] for m in sent) == ["+919876500031", "+919876500032", "+919876500033"]
    assert {m["DltTemplateId"] for m in sent} == {HI_ID}
    assert all(m["Body"].startswith("प्रिय ") for m in sent)
    assert set(SmsMessage.objects.values_list("encoding", flat=True)) == {"unicode"}


@pytest.mark.parametrize(
    ("name", "data", "field", "text"),
    [
        (
            "message-list",
            {"to": "+919876500041", "template": "shipped", "context": ["A", "1"], "language": "h!"},
            "language",
            "'h!' is not a language code",
        ),
        (
            "message-list",
            {"to": "+919876500041", "body": "Hello", "language": "hi"},
            "language",
            "give a template too",
        ),
        (
            "message-bulk",
            {"to": ["+919876500041"], "template": "shipped", "context": ["A", "1"], "language": 7},
            "language",
            "'7' is not a language code",
        ),
        (
            "message-bulk",
            {"to": ["+919876500041"], "body": "Hello", "language": "hi"},
            "language",
            "give a template too",
        ),
        (
            "message-bulk",
            {
                "messages": [
                    {"to": "+919876500041", "template": "shipped", "context": ["A", "1"]},
                    {
                        "to": "+919876500042",
                        "template": "shipped",
                        "context": ["B", "2"],
                        "language": "hindi language",
                    },
                ]
            },
            "messages",
            "Message 2 (language): 'hindi language' is not a language code",
        ),
        (
            "message-bulk",
            {"messages": [{"to": "+919876500041", "body": "Hello", "language": "hi"}]},
            "messages",
            "Message 1 (language): language picks a template's language variant",
        ),
        (
            "message-bulk",
            {"messages": [{"to": "+919876500041", "body": "Hello"}], "language": "hi"},
            "language",
            "give a template too",
        ),
        (
            "template-send",
            {"recipients": [{"to": "+919876500041", "context": ["A", "1"], "language": "1"}]},
            "recipients",
            "Recipient 1 (language): '1' is not a language code",
        ),
        (
            "template-send",
            {"to": "+919876500041", "context": ["A", "1"], "language": ""},
            "language",
            "may not be blank",
        ),
    ],
)
def test_a_bad_language_is_a_400_naming_the_field_and_saves_nothing(
    sandbox: Any, shipped: SmsTemplate, post: Any, name: str, data: Any, field: str, text: str
) -> None:
    args = (shipped.pk,) if name == "template-send" else ()
    response = post(name, data, *args)
    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == [field], errors
    assert text in " ".join(map(str, errors[field])), errors
    assert not SmsMessage.objects.exists()
    assert not SmsBatch.objects.exists()
    assert sent_messages(sandbox) == []
