"""Template language variants: the fallback chain, and what reaches Exotel (the stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from django_exotel_sms import languages
from django_exotel_sms.compose import SmsValidationError
from django_exotel_sms.models import SmsMessage, SmsTemplate, SmsTemplateVariant

from .helpers import sent_messages

pytestmark = pytest.mark.django_db

EN_ID, HI_ID, HI_IN_ID = "1107000000000000101", "1107000000000000102", "1107000000000000103"
EN = "Dear {#var#}, your order {#numeric#} has shipped. - ACME"
HI = "प्रिय {#var#}, आपका ऑर्डर {#numeric#} भेज दिया गया है। - ACME"
HI_IN = "नमस्ते {#var#}, ऑर्डर {#numeric#} रवाना। - ACME"


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Callable[[], Any]:
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def shipped() -> SmsTemplate:
    tpl = SmsTemplate.objects.create(name="shipped", body=EN, dlt_template_id=EN_ID)
    SmsTemplateVariant.objects.create(template=tpl, language="hi", body=HI, dlt_template_id=HI_ID)
    return tpl


def test_fallback_chain_defaults_to_the_primary_subtag() -> None:
    assert languages.fallback_chain("hi_IN", {}) == ["hi-in", "hi"]
    assert languages.fallback_chain("hi", {}) == ["hi"]


def test_fallback_chain_from_the_setting(settings: Any) -> None:
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "TEMPLATE_LANGUAGE_FALLBACK": {"mr": ["hi"]}}
    assert languages.fallback_chain("mr") == ["mr", "hi"]
    assert languages.fallback_chain("mr-IN") == ["mr-in", "mr"]


def test_a_bad_language_code_is_refused_before_saving(shipped: SmsTemplate) -> None:
    with pytest.raises(SmsValidationError) as info:
        SmsMessage.objects.send("+919876500001", template=shipped, context=["A", "1"], language="1")
    assert "language" in info.value.message_dict
    assert not SmsMessage.objects.exists()


def test_a_bad_language_code_in_a_same_text_bulk_is_a_validation_error(
    shipped: SmsTemplate,
) -> None:
    # The text is rendered once for all numbers: a bad code was a bare ValueError there.
    with pytest.raises(SmsValidationError) as info:
        SmsMessage.objects.send_bulk(
            to=["+919876500001"], template=shipped, context=["A", "1"], language="h!"
        )
    assert "language" in info.value.message_dict
    assert not SmsMessage.objects.exists()


def test_variant_placeholders_must_match_the_template(shipped: SmsTemplate) -> None:
    variant = SmsTemplateVariant(template=shipped, language="ta", body="Only {#var#}.")
    with pytest.raises(ValidationError) as info:
        variant.full_clean()
    assert "body" in info.value.message_dict


def test_send_by_language_uses_the_variant_text_and_dlt_id(
    sandbox: Any, shipped: SmsTemplate, on_commit: Callable[[], Any]
) -> None:
    SmsTemplateVariant.objects.create(
        template=shipped, language="hi-IN", body=HI_IN, dlt_template_id=HI_IN_ID
    )
    with on_commit():
        hi_in = shipped.send("+919876500001", ["Asha", "42"], language="hi-IN", send_async=False)
        shipped.send("+919876500002", ["Ravi", "43"], language="hi-BR", send_async=False)
        other = shipped.send("+919876500003", ["Ann", "44"], language="ta", send_async=False)
        plain = shipped.send("+919876500004", ["Bob", "45"], send_async=False)
    sent = {m["To"]: m for m in sent_messages(sandbox)}
    assert sent["+919876500001"]["Body"] == "नमस्ते Asha, ऑर्डर 42 रवाना। - ACME"
    assert sent["+919876500001"]["DltTemplateId"] == HI_IN_ID
    assert sent["+919876500002"]["Body"].startswith("प्रिय Ravi")  # hi-BR -> hi
    assert sent["+919876500002"]["DltTemplateId"] == HI_ID
    for message, number in ((other, "+919876500003"), (plain, "+919876500004")):
        assert sent[number]["Body"].startswith("Dear ")  # -> the template's own text
        assert sent[number]["DltTemplateId"] == EN_ID
        message.refresh_from_db()
        assert message.encoding == "plain"
    hi_in.refresh_from_db()
    assert (hi_in.encoding, hi_in.dlt_template_id) == ("unicode", HI_IN_ID)


def test_send_bulk_picks_a_language_per_message(
    sandbox: Any, shipped: SmsTemplate, on_commit: Callable[[], Any]
) -> None:
    messages = [
        {
            "to": f"+9198765001{i:02d}",
            "template": "shipped",
            "context": [f"N{i}", str(i)],
            "language": "hi" if i % 2 else "en",
        }
        for i in range(10)
    ]
    with on_commit():
        batch = SmsMessage.objects.send_bulk(messages=messages, send_async=False)
    sent = {m["To"]: m for m in sent_messages(sandbox)}
    assert len(sent) == 10 == batch.total
    for i in range(10):
        message = sent[f"+9198765001{i:02d}"]
        if i % 2:
            assert message["Body"] == f"प्रिय N{i}, आपका ऑर्डर {i} भेज दिया गया है। - ACME"
            assert message["DltTemplateId"] == HI_ID
        else:
            assert message["Body"] == f"Dear N{i}, your order {i} has shipped. - ACME"
            assert message["DltTemplateId"] == EN_ID
    rows = SmsMessage.objects.filter(batch=batch)
    assert {(m.encoding, m.dlt_template_id) for m in rows} == {
        ("unicode", HI_ID),
        ("plain", EN_ID),
    }


def test_static_bulk_and_template_send_bulk_take_a_language(
    sandbox: Any, shipped: SmsTemplate, on_commit: Callable[[], Any]
) -> None:
    with on_commit():
        SmsMessage.objects.send_bulk(
            to=["+919876500201", "+919876500202"],
            template=shipped,
            context=["Asha", "7"],
            language="hi",
            send_async=False,
        )
        shipped.send_bulk(
            [{"to": "+919876500203", "context": ["Ravi", "8"], "language": "hi"}],
            send_async=False,
        )
    sent = sent_messages(sandbox)
    assert sorted(m["To"] for m in sent) == ["+919876500201", "+919876500202", "+919876500203"]
    assert {m["DltTemplateId"] for m in sent} == {HI_ID}
    assert all(m["Body"].startswith("प्रिय ") for m in sent)


def test_admin_saves_variants_inline_and_shows_their_encoding(admin_client: Any) -> None:
    from django.urls import reverse

    add = reverse("admin:django_exotel_sms_smstemplate_add")
    response = admin_client.post(
        add,
        {
            "name": "shipped",
            "body": EN,
            "dlt_template_id": EN_ID,
            "sms_type": "transactional",
            "is_active": "on",
            "variants-TOTAL_FORMS": "1",
            "variants-INITIAL_FORMS": "0",
            "variants-0-language": "hi",
            "variants-0-body": HI,
            "variants-0-dlt_template_id": HI_ID,
        },
    )
    assert response.status_code == 302, response.context["errors"]
    tpl = SmsTemplate.objects.get()
    (variant,) = tpl.variants.all()
    assert (variant.language, variant.dlt_template_id) == ("hi", HI_ID)
    page = admin_client.get(reverse("admin:django_exotel_sms_smstemplate_change", args=[tpl.pk]))
    html = page.content.decode()
    assert "UCS-2 (Unicode)" in html and "GSM-7" in html


def test_admin_preview_renders_each_variant_with_the_sample_values(
    admin_client: Any, shipped: SmsTemplate
) -> None:
    from django.urls import reverse

    url = reverse("admin:django_exotel_sms_smstemplate_preview", args=[shipped.pk])
    assert "exotel-preview-variants" not in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"var1": "Asha", "var2": "42"})
    html = response.content.decode()
    assert "Dear Asha, your order 42 has shipped. - ACME" in html  # the template's own
    variants = html.split('id="exotel-preview-variants"', 1)[1]
    row = variants.split('class="exotel-variant-hi"', 1)[1].split("</tr>", 1)[0]
    assert "प्रिय Asha, आपका ऑर्डर 42 भेज दिया गया है। - ACME" in row
    assert HI_ID in row and "UCS-2 (Unicode)" in row and "Matches" in row
