"""Every validation rule of the one door, with its exact error text; nothing saved on failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_exotel_sms.backends import locmem
from django_exotel_sms.compose import SmsValidationError
from django_exotel_sms.models import DltEntity, SenderId, SmsBatch, SmsMessage, SmsTemplate

pytestmark = pytest.mark.django_db

IN_NUMBER = "+919876543210"
SG_NUMBER = "+6591234567"
SETTINGS_ENTITY = "1101000000000000001"  # tests/settings.py
BULK_NUMBERS = [f"+9198765{i:05d}" for i in range(300)]

NO_SENDER = (
    "No sender: pass sender=..., set one on the template, or set EXOTEL_SMS['DEFAULT_SENDER']."
)


def no_entity(number: str, key: str = "EXOTEL_SMS['DLT_ENTITY_ID']") -> str:
    return (
        f"Messages to Indian numbers ({number}) need a DLT entity id: pass dlt_entity_id=..., "
        f"set an entity on the template or on the sender ID, or set {key}."
    )


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def exotel(settings: Any) -> Callable[..., None]:
    """Override EXOTEL_SMS keys for one test (the settings cache follows setting_changed)."""

    def override(**changes: Any) -> None:
        settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, **changes}

    return override


@pytest.fixture(autouse=True)
def existing() -> None:
    """Rows that were there before, so "nothing saved" compares non-zero counts."""
    SmsMessage.objects.send(IN_NUMBER, "Earlier message", send_async=True)
    SmsMessage.objects.send_bulk(to=[IN_NUMBER, "+919876543211"], body="Earlier bulk")


@pytest.fixture
def entity() -> DltEntity:
    return DltEntity.objects.create(entity_id="1101000000000000077", name="Acme")


@pytest.fixture
def sender_row(entity: DltEntity) -> SenderId:
    return SenderId.objects.create(header="ACMEIN", entity=entity)


@pytest.fixture
def otp() -> SmsTemplate:
    return SmsTemplate.objects.create(
        name="otp",
        body="Your OTP is {#numeric#}. Do not share it.",
        dlt_template_id="1107000000000000001",
    )


@pytest.fixture
def greet() -> SmsTemplate:
    return SmsTemplate.objects.create(
        name="greet",
        body="Hi {#var#}, your code is {#numeric#}",
        dlt_template_id="1107000000000000002",
    )


def rejected(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, list[str]]:
    """Run a send that must fail; check nothing was saved or sent; return message_dict."""
    before = (SmsMessage.objects.count(), SmsBatch.objects.count())
    assert before[0] > 0 and before[1] > 0
    with pytest.raises(SmsValidationError) as excinfo:
        call(*args, **kwargs)
    assert (SmsMessage.objects.count(), SmsBatch.objects.count()) == before
    assert locmem.outbox == []
    return excinfo.value.message_dict


def send(*args: Any, **kwargs: Any) -> dict[str, list[str]]:
    return rejected(SmsMessage.objects.send, *args, **kwargs)


def send_bulk(*args: Any, **kwargs: Any) -> dict[str, list[str]]:
    return rejected(SmsMessage.objects.send_bulk, *args, **kwargs)


# -- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "error"),
    [
        ("12345", "'12345' is not a possible number (too short for region IN)."),
        ("98765ABCDE", "'98765ABCDE' is not a phone number: it contains letters."),
        ("91234567", "'91234567' is not a valid phone number (region IN)."),
        ("", "'' is not a phone number: it is empty."),
        ("+999 12345678", "'+999 12345678' is not a phone number: unknown country code."),
    ],
)
def test_invalid_number_is_named(number: str, error: str) -> None:
    assert send(number, "Hello") == {"to": [error]}


@pytest.mark.parametrize("number", ["09876543210", "9876543210", "+91 98765-43210", IN_NUMBER])
def test_indian_national_forms_are_normalised(number: str) -> None:
    assert SmsMessage.objects.send(number, "Hello").to == IN_NUMBER


def test_without_default_region_numbers_must_be_e164(exotel: Callable[..., None]) -> None:
    exotel(DEFAULT_REGION=None)
    assert send("91234567", "Hello") == {
        "to": ["'91234567' is not a phone number: no country code; write it with a leading +."]
    }
    assert send("09876543210", "Hello") == {
        "to": ["'09876543210' is not a phone number: no country code; write it with a leading +."]
    }
    assert SmsMessage.objects.send("+65 9123 4567", "Hello").to == SG_NUMBER


def test_default_region_reads_national_numbers_of_that_region(
    exotel: Callable[..., None],
) -> None:
    exotel(DEFAULT_REGION="SG")
    assert SmsMessage.objects.send("9123 4567", "Hello").to == SG_NUMBER


# -- body -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["", "   \n"])
def test_empty_body(body: str) -> None:
    assert send(IN_NUMBER, body) == {"body": ["SMS body is empty."]}


def test_no_body_and_no_template() -> None:
    assert send(IN_NUMBER) == {"body": ["Give a body or a template."]}


def test_body_over_2000_characters() -> None:
    assert send(IN_NUMBER, "a" * 2001) == {
        "body": ["SMS body is 2001 characters long; Exotel accepts at most 2000."]
    }


def test_body_of_exactly_2000_characters_is_accepted() -> None:
    message = SmsMessage.objects.send(IN_NUMBER, "a" * 2000)
    message.refresh_from_db()
    assert len(message.body) == 2000
    assert (message.encoding, message.segments) == ("plain", 14)  # ceil(2000 / 153)


# -- templates ------------------------------------------------------------------------------


def test_body_given_with_template_must_match_it(otp: SmsTemplate) -> None:
    assert send(IN_NUMBER, "Your code is 123456", template="otp") == {
        "body": [
            "The text does not match DLT template 'otp': "
            "text does not match the template's fixed wording."
        ]
    }
    assert send(IN_NUMBER, "Your OTP is 12ab56. Do not share it.", template=otp) == {
        "body": [
            "The text does not match DLT template 'otp': "
            "variable 1 ({#numeric#}) '12ab56' is not numeric."
        ]
    }
    ok = SmsMessage.objects.send(IN_NUMBER, "Your OTP is 123456. Do not share it.", template=otp)
    assert (ok.template, ok.dlt_template_id) == (otp, "1107000000000000001")


def test_body_given_with_registered_dlt_template_id_must_match(otp: SmsTemplate) -> None:
    assert send(IN_NUMBER, "Something else", dlt_template_id="1107000000000000001") == {
        "body": [
            "The text does not match DLT template 'otp': "
            "text does not match the template's fixed wording."
        ]
    }


@pytest.mark.parametrize(
    ("context", "error"),
    [
        (["Asha"], "variable 2 ({#numeric#}) has no value"),
        ({"var1": "Asha"}, "variable 2 ({#numeric#}) has no value"),
        (None, "variable 1 ({#var#}) has no value"),
        (["Asha", "42", "extra"], "got 3 values but the template has 2 placeholder(s)"),
        (
            {"1": "Asha", "2": "42", "3": "x"},
            "extra value for key '3': the template has 2 placeholder(s)",
        ),
        (
            {"name": "Asha"},
            "unknown variable key 'name'; use 1-based positions such as 1, '1' or 'var1'",
        ),
        (["Asha", "12ab"], "variable 2 ({#numeric#}) '12ab' is not numeric"),
        (
            ["A" * 31, "42"],
            f"variable 1 ({{#var#}}) '{'A' * 31}' is 31 characters; the limit is 30",
        ),
    ],
)
def test_template_render_errors(greet: SmsTemplate, context: Any, error: str) -> None:
    assert send(IN_NUMBER, template="greet", context=context) == {"context": [error]}
    assert rejected(greet.send, IN_NUMBER, context) == {"context": [error]}


def test_context_given_as_a_string_is_a_validation_error(greet: SmsTemplate) -> None:
    assert send(IN_NUMBER, template=greet, context="Asha") == {
        "context": ["context must be a sequence or a mapping of values, not a string."]
    }


def test_variable_length_limit_follows_settings(
    greet: SmsTemplate, exotel: Callable[..., None]
) -> None:
    exotel(DLT_MAX_VAR_LENGTH=10)
    assert send(IN_NUMBER, template=greet, context=["A" * 11, "42"]) == {
        "context": ["variable 1 ({#var#}) 'AAAAAAAAAAA' is 11 characters; the limit is 10"]
    }
    assert send(IN_NUMBER, "Hi AAAAAAAAAAA, your code is 42", template=greet) == {
        "body": [
            "The text does not match DLT template 'greet': "
            "variable 1 ({#var#}) 'AAAAAAAAAAA' is 11 characters; the limit is 10."
        ]
    }
    assert send_bulk(to=[IN_NUMBER], template=greet, context=["A" * 11, "42"]) == {
        "context": ["variable 1 ({#var#}) 'AAAAAAAAAAA' is 11 characters; the limit is 10"]
    }
    with pytest.raises(ValueError, match="the limit is 10"):
        greet.render(["A" * 11, "42"])
    assert SmsMessage.objects.send(IN_NUMBER, template=greet, context=["A" * 10, "42"]).body == (
        "Hi AAAAAAAAAA, your code is 42"
    )


def test_a_higher_variable_limit_is_honoured_when_rendering(
    greet: SmsTemplate, exotel: Callable[..., None]
) -> None:
    exotel(DLT_MAX_VAR_LENGTH=40)
    name = "B" * 35
    assert greet.render([name, "7"]) == f"Hi {name}, your code is 7"
    assert SmsMessage.objects.send(IN_NUMBER, template=greet, context=[name, "7"]).body == (
        f"Hi {name}, your code is 7"
    )
    batch = SmsMessage.objects.send_bulk(to=[IN_NUMBER], template=greet, context=[name, "7"])
    assert batch.messages.get().body == f"Hi {name}, your code is 7"


def test_inactive_template(otp: SmsTemplate) -> None:
    otp.is_active = False
    otp.save()
    assert send(IN_NUMBER, template="otp", context=["1234"]) == {
        "template": ["Template 'otp' is inactive; activate it before sending."]
    }


def test_unknown_template() -> None:
    assert send(IN_NUMBER, template="nope", context=["1"]) == {
        "template": ["No SMS template named 'nope'."]
    }
    assert send_bulk(to=[IN_NUMBER], template="nope") == {
        "template": ["No SMS template named 'nope'."]
    }


# -- sender ---------------------------------------------------------------------------------


def test_sender_missing(exotel: Callable[..., None]) -> None:
    exotel(DEFAULT_SENDER=None)
    assert send(IN_NUMBER, "Hello") == {"sender": [NO_SENDER]}
    assert SmsMessage.objects.send(IN_NUMBER, "Hello", sender="ACMEIN").sender == "ACMEIN"


def test_sender_missing_names_the_named_account_key(exotel: Callable[..., None]) -> None:
    exotel(ACCOUNTS={"promo": {"ACCOUNT_SID": "p", "API_KEY": "k", "API_TOKEN": "t"}})
    exotel(DEFAULT_SENDER=None)
    assert send(IN_NUMBER, "Hello", account="promo") == {
        "sender": [
            "No sender: pass sender=..., set one on the template, or set "
            "EXOTEL_SMS['ACCOUNTS']['promo']['DEFAULT_SENDER']."
        ]
    }


def test_inactive_sender(sender_row: SenderId) -> None:
    sender_row.is_active = False
    sender_row.save()
    assert send(IN_NUMBER, "Hello", sender="ACMEIN") == {
        "sender": ["Sender ID 'ACMEIN' is inactive."]
    }


# -- DLT ------------------------------------------------------------------------------------


def test_indian_number_needs_a_dlt_entity(exotel: Callable[..., None]) -> None:
    exotel(DLT_ENTITY_ID=None)
    assert send("09876543210", "Hello") == {"dlt_entity_id": [no_entity(IN_NUMBER)]}
    message = SmsMessage.objects.send(SG_NUMBER, "Hello")
    assert (message.to, message.dlt_entity_id) == (SG_NUMBER, "")


def test_named_account_dlt_entity_error_names_its_key(exotel: Callable[..., None]) -> None:
    exotel(
        DLT_ENTITY_ID=None,
        ACCOUNTS={"promo": {"ACCOUNT_SID": "p", "API_KEY": "k", "API_TOKEN": "t"}},
    )
    assert send(IN_NUMBER, "Hello", account="promo") == {
        "dlt_entity_id": [no_entity(IN_NUMBER, "EXOTEL_SMS['ACCOUNTS']['promo']['DLT_ENTITY_ID']")]
    }


def test_dlt_entity_can_be_made_optional_for_india(exotel: Callable[..., None]) -> None:
    exotel(DLT_ENTITY_ID=None, REQUIRE_DLT_FOR_INDIA=False)
    assert SmsMessage.objects.send(IN_NUMBER, "Hello").dlt_entity_id == ""


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"message": True, "template": True, "sender": True}, "1101000000000000011"),
        ({"message": False, "template": True, "sender": True}, "1101000000000000022"),
        ({"message": False, "template": False, "sender": True}, "1101000000000000033"),
        ({"message": False, "template": False, "sender": False}, SETTINGS_ENTITY),
    ],
)
def test_dlt_entity_precedence(given: dict[str, bool], expected: str) -> None:
    """message > template > the sender's entity > settings."""
    sender_entity = DltEntity.objects.create(entity_id="1101000000000000033", name="S")
    template_entity = DltEntity.objects.create(entity_id="1101000000000000022", name="T")
    SenderId.objects.create(header="ACMEIN", entity=sender_entity if given["sender"] else None)
    template = SmsTemplate.objects.create(
        name="t", body="Code {#numeric#}", entity=template_entity if given["template"] else None
    )
    message = SmsMessage.objects.send(
        IN_NUMBER,
        template=template,
        context=["1"],
        sender="ACMEIN",
        dlt_entity_id="1101000000000000011" if given["message"] else None,
    )
    assert message.dlt_entity_id == expected


def test_template_sender_supplies_the_entity(entity: DltEntity, sender_row: SenderId) -> None:
    template = SmsTemplate.objects.create(name="t", body="Code {#numeric#}", sender=sender_row)
    message = SmsMessage.objects.send(IN_NUMBER, template=template, context=["9"])
    assert (message.sender, message.dlt_entity_id) == ("ACMEIN", entity.entity_id)


@pytest.mark.parametrize(
    ("options", "field", "error"),
    [
        (
            {"dlt_entity_id": "ABC123"},
            "dlt_entity_id",
            "A DLT entity id is made of digits; got 'ABC123'.",
        ),
        (
            {"dlt_template_id": "T-1"},
            "dlt_template_id",
            "A DLT template id is made of digits; got 'T-1'.",
        ),
        (
            {"sms_type": "otp"},
            "sms_type",
            "sms_type must be one of transactional, transactional_opt_in, promotional; got 'otp'.",
        ),
        ({"priority": "urgent"}, "priority", "priority must be 'normal' or 'high'; got 'urgent'."),
        ({"encoding": "utf8"}, "encoding", "encoding must be 'plain' or 'unicode', not 'utf8'."),
        (
            {"custom_field": "x" * 256},
            "custom_field",
            "custom_field is longer than 255 characters.",
        ),
    ],
)
def test_option_values(options: dict[str, str], field: str, error: str) -> None:
    assert send(IN_NUMBER, "Hello", **options) == {field: [error]}


def test_settings_entity_must_be_digits_too(exotel: Callable[..., None]) -> None:
    exotel(DLT_ENTITY_ID="entity-1")
    assert send(IN_NUMBER, "Hello") == {
        "dlt_entity_id": ["A DLT entity id is made of digits; got 'entity-1'."]
    }


def test_valid_option_values_are_stored() -> None:
    message = SmsMessage.objects.send(
        IN_NUMBER,
        "Hello",
        dlt_template_id="1107000000000000009",
        sms_type="transactional_opt_in",
        priority="high",
        encoding="unicode",
        custom_field="x" * 255,
    )
    message.refresh_from_db()
    assert (message.sms_type, message.priority, message.encoding) == (
        "transactional_opt_in",
        "high",
        "unicode",
    )
    assert message.custom_field == "x" * 255


def test_plain_encoding_cannot_carry_non_gsm_text() -> None:
    assert send(IN_NUMBER, "OTP नमस्ते", encoding="plain") == {
        "encoding": [
            "Character 'न' (U+0928) at position 4 is not in the GSM 7-bit alphabet; "
            "it cannot be sent with encoding 'plain'."
        ]
    }


def test_unknown_account() -> None:
    error = {"account": ["Unknown Exotel account 'nope': add it to EXOTEL_SMS['ACCOUNTS']."]}
    assert send(IN_NUMBER, "Hello", account="nope") == error
    assert send_bulk(to=[IN_NUMBER], body="Hello", account="nope") == error


def test_every_problem_is_reported_at_once(exotel: Callable[..., None]) -> None:
    exotel(DEFAULT_SENDER=None)
    assert send("12345", "", sms_type="otp", priority="urgent") == {
        "to": ["'12345' is not a possible number (too short for region IN)."],
        "body": ["SMS body is empty."],
        "sender": [NO_SENDER],
        "sms_type": [
            "sms_type must be one of transactional, transactional_opt_in, promotional; got 'otp'."
        ],
        "priority": ["priority must be 'normal' or 'high'; got 'urgent'."],
    }


# -- bulk -----------------------------------------------------------------------------------


def test_static_bulk_names_the_invalid_message() -> None:
    numbers = BULK_NUMBERS[:120]
    numbers[56] = "12345"
    assert send_bulk(to=numbers, body="Hello") == {
        "to": ["Message 57 (to): '12345' is not a possible number (too short for region IN)."]
    }


def test_dynamic_bulk_names_the_invalid_message() -> None:
    messages = [{"to": n, "body": f"Hello {i}"} for i, n in enumerate(BULK_NUMBERS[:120])]
    messages[56]["body"] = ""
    assert send_bulk(messages=messages) == {"messages": ["Message 57 (body): SMS body is empty."]}


def test_bulk_error_after_the_first_chunk_was_inserted_saves_nothing() -> None:
    numbers = BULK_NUMBERS[:250]
    numbers[-1] = "not a number"
    assert send_bulk(to=numbers, body="Hello") == {
        "to": ["Message 250 (to): 'not a number' is not a phone number: it does not look like one."]
    }


def test_bulk_error_list_is_capped() -> None:
    numbers = list(BULK_NUMBERS[:200])
    for i in range(0, 200, 5):  # 40 invalid: messages 1, 6, 11, ...
        numbers[i] = "12345"
    errors = send_bulk(to=numbers, body="Hello")["to"]
    assert len(errors) == 21
    assert errors[0].startswith("Message 1 (to): '12345' is not a possible number")
    assert errors[19].startswith("Message 96 (to): ")
    assert errors[-1] == "... and 20 more invalid message(s)."


def test_bulk_error_cap_counts_messages_not_fields() -> None:
    """A message with two problems is still one message in the list and in the count."""
    messages: list[dict[str, Any]] = [{"to": "12345", "body": ""} for _ in range(30)]
    errors = send_bulk(messages=messages)["messages"]
    listed = {e.split(" (")[0] for e in errors[:-1]}
    assert listed == {f"Message {n}" for n in range(1, 21)}
    assert errors[0] == (
        "Message 1 (to): '12345' is not a possible number (too short for region IN)."
    )
    assert errors[1] == "Message 1 (body): SMS body is empty."
    assert errors[-1] == "... and 10 more invalid message(s)."


def test_bulk_per_message_validation_uses_each_message_options(otp: SmsTemplate) -> None:
    messages: list[dict[str, Any]] = [
        {"to": IN_NUMBER, "template": "otp", "context": ["1234"]},
        {"to": IN_NUMBER, "body": "Hello", "sms_type": "otp"},
        {"to": IN_NUMBER, "template": "otp", "context": ["12x4"]},
    ]
    assert send_bulk(messages=messages) == {
        "messages": [
            "Message 2 (sms_type): sms_type must be one of transactional, "
            "transactional_opt_in, promotional; got 'otp'.",
            "Message 3 (context): variable 1 ({#numeric#}) '12x4' is not numeric",
        ]
    }


@pytest.mark.parametrize(
    ("kwargs", "errors"),
    [
        ({}, {"to": ["Give either to=[...] or messages=[...]."]}),
        (
            {"to": [IN_NUMBER], "messages": [{"to": IN_NUMBER, "body": "x"}]},
            {"to": ["Give either to=[...] or messages=[...]."]},
        ),
        (
            {"to": IN_NUMBER, "body": "x"},
            {"to": ["to must be a list of numbers; for one number use send()."]},
        ),
        ({"to": [], "body": "x"}, {"to": ["No recipients given."]}),
        ({"to": iter(()), "body": "x"}, {"to": ["No recipients given."]}),
        ({"messages": []}, {"to": ["No recipients given."]}),
        (
            {"messages": [{"to": IN_NUMBER, "body": "x"}, "oops"]},
            {"messages": ["Message 2 is not a mapping."]},
        ),
        ({"messages": [{"body": "x"}]}, {"messages": ["Message 1 has no 'to'."]}),
        (
            {"messages": [{"to": IN_NUMBER, "body": "x", "priority": "high"}]},
            {
                "messages": [
                    "Message 1 has unknown key(s) priority; allowed per message: to, body, "
                    "sender, template, context, dlt_template_id, sms_type, language."
                ]
            },
        ),
    ],
)
def test_bulk_shape_errors(kwargs: dict[str, Any], errors: dict[str, list[str]]) -> None:
    assert send_bulk(**kwargs) == errors


def test_static_bulk_with_shared_options_checks_them_once_per_message() -> None:
    assert send_bulk(to=BULK_NUMBERS[:3], body="Hello", priority="urgent") == {
        "to": [
            f"Message {n} (priority): priority must be 'normal' or 'high'; got 'urgent'."
            for n in (1, 2, 3)
        ]
    }


def test_template_send_bulk_names_the_bad_context(otp: SmsTemplate) -> None:
    recipients: Iterator[dict[str, Any]] = (
        {"to": n, "context": ["12a" if i == 4 else str(i)]} for i, n in enumerate(BULK_NUMBERS[:10])
    )
    assert rejected(otp.send_bulk, recipients) == {
        "messages": ["Message 5 (context): variable 1 ({#numeric#}) '12a' is not numeric"]
    }


# -- what a column cannot hold: lengths and NUL characters ----------------------------------

NUL_TEXT = "contains a NUL character (\\x00), which the database cannot store."


@pytest.mark.parametrize(
    ("options", "field", "error"),
    [
        ({"sender": "S" * 41}, "sender", "sender is longer than 40 characters."),
        (
            {"dlt_template_id": "1" * 33},
            "dlt_template_id",
            "dlt_template_id is longer than 32 characters.",
        ),
        (
            {"dlt_entity_id": "1" * 33},
            "dlt_entity_id",
            "dlt_entity_id is longer than 32 characters.",
        ),
        ({"sender": "ACME\x00"}, "sender", f"sender {NUL_TEXT}"),
        ({"custom_field": "ref\x00"}, "custom_field", f"custom_field {NUL_TEXT}"),
        (
            {
                "shorten_urls": True,
                "shorten_url_params": {"tracking": True, "header": "a\x00"},
            },
            "shorten_url_params",
            f"shorten_url_params {NUL_TEXT}",
        ),
        (
            {"dlt_template_id": "²"},
            "dlt_template_id",
            "A DLT template id is made of digits; got '²'.",
        ),
        (
            {"dlt_entity_id": "١٢٣"},
            "dlt_entity_id",
            "A DLT entity id is made of digits; got '١٢٣'.",
        ),
    ],
)
def test_values_a_column_cannot_hold_are_refused(
    options: dict[str, Any], field: str, error: str
) -> None:
    assert send(IN_NUMBER, "Hello", **options) == {field: [error]}
    assert send_bulk(to=[IN_NUMBER], body="Hello", **options) == {
        "to": [f"Message 1 ({field}): {error}"]
    }


def test_the_longest_values_a_column_holds_are_stored() -> None:
    message = SmsMessage.objects.send(
        IN_NUMBER,
        "Hello",
        dlt_entity_id="1" * 32,
        dlt_template_id="2" * 32,
        custom_field="c" * 255,
    )
    message.refresh_from_db()
    # (A sender is a 6-character header or an ExoPhone: never near its 40-character column.)
    assert (message.dlt_entity_id, message.dlt_template_id) == ("1" * 32, "2" * 32)
    assert message.custom_field == "c" * 255


def test_unknown_shorten_url_params_are_refused_before_saving() -> None:
    errors = send(IN_NUMBER, "Hello", shorten_urls=True, shorten_url_params={"colour": "red"})
    (text,) = errors.pop("shorten_url_params")
    assert errors == {}
    assert text.startswith("shorten_url_params has an unknown key 'colour'; expected one of ")


def test_nul_in_a_body_is_refused() -> None:
    assert send(IN_NUMBER, "Hello\x00") == {"body": [f"The text {NUL_TEXT}"]}
    assert send_bulk(messages=[{"to": IN_NUMBER, "body": "Hi\x00"}]) == {
        "messages": [f"Message 1 (body): The text {NUL_TEXT}"]
    }


def test_nul_in_a_context_value_is_refused(greet: SmsTemplate) -> None:
    assert send(IN_NUMBER, template=greet, context=["Ann\x00", "12"]) == {
        "context": [f"The text {NUL_TEXT}"]
    }


@pytest.mark.parametrize("name", ["otp\x00", "n" * 101])
def test_a_template_name_no_row_can_have_is_unknown(otp: SmsTemplate, name: str) -> None:
    assert send(IN_NUMBER, template=name, context=["1"]) == {
        "template": [f"No SMS template named {name!r}."]
    }


@pytest.mark.parametrize("pk", [2**63, -1, 10**22])
def test_a_template_id_out_of_range_is_unknown(pk: int) -> None:
    assert send(IN_NUMBER, template=pk) == {"template": [f"No SMS template with id {pk}."]}


@pytest.mark.parametrize(
    ("name", "error"),
    [("b" * 201, "name is longer than 200 characters."), ("q3\x00", f"name {NUL_TEXT}")],
)
def test_batch_name_must_fit_its_column(name: str, error: str) -> None:
    assert send_bulk(to=[IN_NUMBER], body="Hello", name=name) == {"name": [error]}
