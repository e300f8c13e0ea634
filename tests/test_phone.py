from __future__ import annotations

import phonenumbers
import pytest

from django_exotel_sms.phone import InvalidNumber, is_indian, match_key, normalize, normalize_many

MOBILE = "+919876543210"


@pytest.mark.parametrize(
    "number",
    [
        "+919876543210",
        "+91 98765 43210",
        "+91-98765-43210",
        "09876543210",
        "098765 43210",
        "9876543210",
        "98765 43210",
        "98765-43210",
        "0091 98765 43210",  # international prefix dialled from India
        "919876543210",  # country code without '+'
        "  +91 (0) 98765 43210 ",
    ],
)
def test_indian_mobile_forms(number: str) -> None:
    assert normalize(number) == MOBILE
    assert normalize(number, "in") == MOBILE  # region codes in lower case work too


def test_reference_numbers_are_valid() -> None:
    # Guards the fixtures: if phonenumbers metadata changes, fail here first.
    for number in (MOBILE, "+16502530000", "+6591234567", "+912223456789"):
        assert phonenumbers.is_valid_number(phonenumbers.parse(number, None))


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+1 650-253-0000", "+16502530000"),
        ("+65 9123 4567", "+6591234567"),
        ("+91 22 2345 6789", "+912223456789"),
    ],
)
def test_international_without_region(number: str, expected: str) -> None:
    assert normalize(number, None) == expected


def test_national_form_needs_region() -> None:
    with pytest.raises(InvalidNumber) as excinfo:
        normalize("650-253-0000", None)
    assert str(excinfo.value) == (
        "'650-253-0000' is not a phone number: no country code; write it with a leading +."
    )
    assert normalize("650-253-0000", "US") == "+16502530000"
    assert normalize("9123 4567", "SG") == "+6591234567"


@pytest.mark.parametrize(
    ("number", "region", "message"),
    [
        ("12345", "IN", "'12345' is not a possible number (too short for region IN)."),
        ("+91 12345", "IN", "'+91 12345' is not a possible number (too short)."),
        (
            "+91 98765 43210 98765",
            None,
            "'+91 98765 43210 98765' is not a possible number (too long).",
        ),
        ("11111 11111", "IN", "'11111 11111' is not a valid phone number (region IN)."),
        ("+1 555 555 5555", "IN", "'+1 555 555 5555' is not a valid phone number."),
        ("abc", "IN", "'abc' is not a phone number: it does not look like one."),
        ("+999 1234567", None, "'+999 1234567' is not a phone number: unknown country code."),
        (
            "9876543210",
            "XX",
            "'9876543210' is not a phone number: unknown default region 'XX'.",
        ),
        ("", "IN", "'' is not a phone number: it is empty."),
        ("   ", "IN", "'   ' is not a phone number: it is empty."),
        (
            "+91 98765 43210 ext. 5",
            "IN",
            "'+91 98765 43210 ext. 5' has an extension; SMS cannot be sent to it.",
        ),
        ("1-800-FLOWERS", "US", "'1-800-FLOWERS' is not a phone number: it contains letters."),
        ("98765 4321O", "IN", "'98765 4321O' is not a phone number: it contains letters."),
    ],
)
def test_invalid_numbers(number: str, region: str | None, message: str) -> None:
    with pytest.raises(InvalidNumber) as excinfo:
        normalize(number, region)
    assert str(excinfo.value) == message
    assert excinfo.value.number == number
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize(
    ("number", "type_name"), [(None, "NoneType"), (9876543210, "int"), (b"+91", "bytes")]
)
def test_non_strings_rejected(number: object, type_name: str) -> None:
    with pytest.raises(InvalidNumber) as excinfo:
        normalize(number)  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        f"{number!r} is not a phone number: expected a string, not {type_name}."
    )
    assert excinfo.value.number is number


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+919876543210", True),
        ("+912223456789", True),
        ("+16502530000", False),
        ("+6591234567", False),
        ("09876543210", False),  # not E.164: no region is assumed
        ("garbage", False),
        ("", False),
        (None, False),
    ],
)
def test_is_indian(number: str, expected: bool) -> None:
    assert is_indian(number) is expected


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("09876543210", "IN", MOBILE),  # Exotel's usual echo
        ("+919876543210", "IN", MOBILE),
        ("919876543210", "IN", MOBILE),
        ("9876543210", "IN", MOBILE),
        ("09876543210", "in", MOBILE),
        ("+16502530000", "IN", "+16502530000"),
        ("+16502530000", None, "+16502530000"),
        ("09876543210", None, None),
        ("XXXXX30240", "IN", None),  # masked by Exotel: must not turn into keypad digits
        ("0XXXXXX4890", "IN", None),
        ("12", "IN", None),
        ("", "IN", None),
        ("not a number", "IN", None),
        (None, "IN", None),
        ("9876543210", "XX", None),
    ],
)
def test_match_key(number: str, region: str | None, expected: str | None) -> None:
    assert match_key(number, region) == expected


def test_match_key_agrees_with_normalize() -> None:
    stored = normalize("98765 43210")
    assert match_key("09876543210") == stored
    assert match_key("+91 98765 43210") == stored


def test_normalize_many_collects_every_error() -> None:
    numbers = ["09876543210", "12345", "+1 650 253 0000", "abc", "+91 98765 43210", ""]
    valid, errors = normalize_many(numbers, "IN")
    assert valid == [MOBILE, "+16502530000", MOBILE]  # order and duplicates kept
    assert [error.number for error in errors] == ["12345", "abc", ""]
    assert all(isinstance(error, InvalidNumber) for error in errors)
    assert str(errors[0]) == "'12345' is not a possible number (too short for region IN)."


def test_normalize_many_region_and_iterables() -> None:
    valid, errors = normalize_many(iter(["+6591234567", "91234567"]), None)
    assert valid == ["+6591234567"]
    assert [error.number for error in errors] == ["91234567"]
    assert normalize_many([], "IN") == ([], [])
    assert normalize_many(("91234567",), "SG") == (["+6591234567"], [])
