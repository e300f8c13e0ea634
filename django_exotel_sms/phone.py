"""Phone number normalisation to E.164, the form we store and send to Exotel."""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, ValidationResult

__all__ = ["InvalidNumber", "is_indian", "match_key", "normalize", "normalize_many"]

_E164 = phonenumbers.PhoneNumberFormat.E164
_INDIA_COUNTRY_CODE = 91
# An Indian number already in E.164: parsing it could only give +91 and these ten digits
# (no leading zero to strip, no extension, no letters), so it is checked without parsing.
_INDIAN_E164 = re.compile(r"\+91[1-9][0-9]{9}")

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "it does not look like one",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_NOT_POSSIBLE = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.INVALID_LENGTH: "wrong length",
}


class InvalidNumber(ValueError):
    """A number we refuse to send to; ``number`` is the input exactly as given."""

    def __init__(self, number: object, message: str) -> None:
        super().__init__(message)
        self.number = number


def _region(number: str, default_region: str | None) -> str:
    """The region that shaped the verdict, when there was one, for error messages."""
    if number.lstrip().startswith("+") or default_region is None:
        return ""
    return f"region {default_region}"


def _parse(number: object, default_region: str | None) -> PhoneNumber:
    if not isinstance(number, str):
        raise InvalidNumber(
            number,
            f"{number!r} is not a phone number: expected a string, not {type(number).__name__}.",
        )
    if not number.strip():
        raise InvalidNumber(number, f"{number!r} is not a phone number: it is empty.")
    try:
        parsed = phonenumbers.parse(number, default_region)
    except NumberParseException as exc:
        detail = _PARSE_ERRORS.get(exc.error_type, "it cannot be parsed")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            if number.lstrip().startswith("+"):
                detail = "unknown country code"
            elif default_region is None:
                detail = "no country code; write it with a leading +"
            elif default_region not in phonenumbers.SUPPORTED_REGIONS:
                detail = f"unknown default region {default_region!r}"
        raise InvalidNumber(number, f"{number!r} is not a phone number: {detail}.") from exc
    if parsed.extension:
        # E.164 has no room for an extension and an SMS cannot reach one.
        raise InvalidNumber(number, f"{number!r} has an extension; SMS cannot be sent to it.")
    if _has_letters(number):
        # phonenumbers reads letters as keypad digits (vanity numbers); for SMS that only
        # turns typos and masked numbers such as 0XXXXX30240 into real-looking ones.
        raise InvalidNumber(number, f"{number!r} is not a phone number: it contains letters.")
    return parsed


def _has_letters(number: str) -> bool:
    return any(char.isalpha() for char in number)


def _upper(region: str | None) -> str | None:
    # phonenumbers only knows upper-case region codes; settings often say "in".
    return region.upper() if region else None


def normalize(number: str, default_region: str | None = "IN") -> str:
    """Return ``number`` in E.164 (``+919876543210``) or raise InvalidNumber.

    ``default_region`` (ISO 3166 code) reads national forms such as ``09876543210``;
    with None only international forms (``+65...``) are accepted.
    """
    if isinstance(number, str) and _INDIAN_E164.fullmatch(number):
        parsed = PhoneNumber(country_code=_INDIA_COUNTRY_CODE, national_number=int(number[3:]))
        if phonenumbers.is_valid_number(parsed):
            return number
        # Not valid: the full path below words the reason.
    default_region = _upper(default_region)
    parsed = _parse(number, default_region)
    region = _region(number, default_region)
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        detail = _NOT_POSSIBLE.get(reason, "impossible") + (f" for {region}" if region else "")
        raise InvalidNumber(number, f"{number!r} is not a possible number ({detail}).")
    if not phonenumbers.is_valid_number(parsed):
        where = f" ({region})" if region else ""
        raise InvalidNumber(number, f"{number!r} is not a valid phone number{where}.")
    return phonenumbers.format_number(parsed, _E164)


def is_indian(e164: str) -> bool:
    """True for an Indian (+91) number; False for others and for anything unparseable."""
    if not isinstance(e164, str):
        return False
    try:
        parsed = phonenumbers.parse(e164, None)
    except NumberParseException:
        return False
    return parsed.country_code == _INDIA_COUNTRY_CODE


def match_key(number: str, default_region: str | None = "IN") -> str | None:
    """E.164 key to find a stored number from the ``To`` Exotel echoes back; never raises.

    Exotel echoes ``09876543210`` as often as ``+919876543210``, and masks some numbers
    (``XXXXX30240``: no key). Only possibility is checked, not validity, so a number
    range newer than our phonenumbers metadata still finds its message.
    """
    if not isinstance(number, str) or _has_letters(number):
        return None
    try:
        parsed = phonenumbers.parse(number, _upper(default_region))
    except NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, _E164)


def normalize_many(
    numbers: Iterable[str], default_region: str | None = "IN"
) -> tuple[list[str], list[InvalidNumber]]:
    """Normalise each number, collecting every error instead of stopping at the first.

    Valid numbers keep their input order; duplicates are kept (the caller decides).
    """
    valid: list[str] = []
    errors: list[InvalidNumber] = []
    for number in numbers:
        try:
            valid.append(normalize(number, default_region))
        except InvalidNumber as exc:
            errors.append(exc)
    return valid, errors


def mask(number: str) -> str:
    """``+919876543210`` -> ``+9198******10``: the country and operator prefix stay.

    For logs and exports that must not hold a full number.
    """
    if len(number) <= 6:
        return "*" * len(number)
    keep_start = 5 if number.startswith("+") else 4
    return number[:keep_start] + "*" * (len(number) - keep_start - 2) + number[-2:]
