"""Saving a bulk quickly without changing a single answer: the shortcuts ``send_bulk`` takes
(number fast path, validated answers reused per recipient class, instances built without
``Model.__init__``) give exactly what the full path gives, and refuse what it refuses."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import phonenumbers
import pytest
from django.db.models.signals import post_init
from django.utils import timezone

from django_exotel_sms import phone
from django_exotel_sms.compose import Composer, SmsValidationError
from django_exotel_sms.db.instances import builder
from django_exotel_sms.models import SmsBatch, SmsMessage

pytestmark = pytest.mark.django_db

FOREIGN = "+6591234567"  # Singapore mobile
IST = dt_timezone(timedelta(hours=5, minutes=30))


def _full_normalize(number: str) -> str:
    """phone.normalize without its Indian E.164 fast path."""
    parsed = phonenumbers.parse(number, "IN")
    if not phonenumbers.is_valid_number(parsed):
        raise phone.InvalidNumber(number, "invalid")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def test_indian_fast_path_agrees_with_parsing() -> None:
    rng = random.Random(17)
    samples = [f"+91{rng.randint(1_000_000_000, 9_999_999_999)}" for _ in range(5000)]
    for number in samples:
        try:
            expected: str | None = _full_normalize(number)
        except phone.InvalidNumber:
            expected = None
        try:
            got: str | None = phone.normalize(number)
        except phone.InvalidNumber:
            got = None
        assert got == expected, number


def test_an_invalid_indian_number_keeps_its_full_error() -> None:
    with pytest.raises(phone.InvalidNumber, match=r"is not a valid phone number"):
        phone.normalize("+915555555555")


def _fields() -> dict[str, Any]:
    return Composer().compose("+919876543210", "Hello there")


def test_builder_gives_what_model_init_gives() -> None:
    batch = SmsBatch.objects.create()
    fields = _fields()
    built = builder(SmsMessage)(batch=batch, **fields)
    plain = SmsMessage(batch=batch, **fields)
    assert {k: v for k, v in vars(built).items() if k != "_state"} == {
        k: v for k, v in vars(plain).items() if k != "_state"
    }
    assert built._state.adding and built._state.db == plain._state.db
    SmsMessage.objects.bulk_create([built])
    assert SmsMessage.objects.get(batch=batch).body == "Hello there"


def test_builder_uses_model_init_when_someone_listens() -> None:
    def receiver(**kwargs: Any) -> None:
        pass

    post_init.connect(receiver, sender=SmsMessage)
    try:
        assert builder(SmsMessage) is SmsMessage
    finally:
        post_init.disconnect(receiver, sender=SmsMessage)
    assert builder(SmsMessage) is not SmsMessage


def test_builder_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="nonsense"):
        builder(SmsMessage)(nonsense=1)


def test_reused_answers_still_apply_the_indian_rules(settings: Any) -> None:
    """A foreign recipient validated first must not let an Indian one skip the DLT rule."""
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "DLT_ENTITY_ID": None}
    with pytest.raises(SmsValidationError) as caught:
        SmsMessage.objects.send_bulk(to=[FOREIGN, FOREIGN, "+919876543210"], body="Hi")
    assert any(t.startswith("Message 3 (dlt_entity_id)") for t in caught.value.message_dict["to"])
    assert not SmsMessage.objects.exists() and not SmsBatch.objects.exists()


def test_reused_answers_still_check_each_body() -> None:
    bodies = ["Plain text", "Also plain", "Unicode \u0928\u092e\u0938\u094d\u0924\u0947", ""]
    messages = [{"to": f"+91987654321{i}", "body": b} for i, b in enumerate(bodies)]
    with pytest.raises(SmsValidationError) as caught:
        SmsMessage.objects.send_bulk(messages=messages)
    assert caught.value.message_dict["messages"] == ["Message 4 (body): SMS body is empty."]
    assert not SmsMessage.objects.exists()

    batch = SmsMessage.objects.send_bulk(messages=messages[:3])
    rows = SmsMessage.objects.filter(batch=batch).order_by("pk")
    assert [(m.body, m.encoding, m.segments) for m in rows] == [
        ("Plain text", "plain", 1),
        ("Also plain", "plain", 1),
        (bodies[2], "unicode", 1),
    ]


def test_reused_answers_still_match_each_body_with_its_dlt_template(otp_template: Any) -> None:
    messages = [
        {"to": "+919876543210", "body": "Your OTP is 1234", "template": "otp"},
        {"to": "+919876543211", "body": "Your OTP is 5678", "template": "otp"},
        {"to": "+919876543212", "body": "Your PIN is 5678", "template": "otp"},
    ]
    with pytest.raises(SmsValidationError) as caught:
        SmsMessage.objects.send_bulk(messages=messages)
    (only,) = caught.value.message_dict["messages"]
    assert only.startswith("Message 3 (body): The text does not match DLT template 'otp'")
    batch = SmsMessage.objects.send_bulk(messages=messages[:2])
    assert SmsMessage.objects.filter(batch=batch).count() == 2


@pytest.fixture
def otp_template() -> Any:
    from django_exotel_sms.models import SmsTemplate

    return SmsTemplate.objects.create(
        name="otp", body="Your OTP is {#var#}", dlt_template_id="1107000000000000001"
    )


def test_reused_answers_follow_the_windows_per_recipient(monkeypatch: Any, settings: Any) -> None:
    """A window governing Indian numbers defers them, not the foreign rows around them."""
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "SENDING_WINDOWS": [
            {
                "sms_types": ["transactional"],
                "regions": ["IN"],
                "start": "22:00",
                "end": "06:00",
                "timezone": "Asia/Kolkata",
            }
        ],
    }
    now = datetime(2026, 3, 2, 12, 0, tzinfo=IST)
    monkeypatch.setattr(timezone, "now", lambda: now)
    batch = SmsMessage.objects.send_bulk(to=[FOREIGN, "+919876543210", FOREIGN], body="Hi")
    rows = SmsMessage.objects.filter(batch=batch).order_by("pk")
    assert [m.next_attempt_at for m in rows] == [
        None,
        datetime(2026, 3, 2, 22, 0, tzinfo=IST),
        None,
    ]


def test_repeated_numbers_are_normalised_once(monkeypatch: Any) -> None:
    calls: list[str] = []
    real = phone.normalize

    def counting(number: str, default_region: str | None = "IN") -> str:
        calls.append(number)
        return real(number, default_region)

    monkeypatch.setattr(phone, "normalize", counting)
    batch = SmsMessage.objects.send_bulk(to=["09876543210", "+919876543211"] * 50, body="Hi")
    assert batch.total == 100
    assert sorted(set(calls)) == ["+919876543211", "09876543210"] and len(calls) == 2
