"""Phone numbers as the sandbox sees them: valid or not, a normal form, and Exotel's echo.

Exotel's examples answer ``To`` for Indian numbers in the national ``0XXXXXXXXXX`` form, so
the sandbox does the same: clients must match answers back by position, not by string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Number", "parse_number", "sms_units"]

_SEPARATORS = str.maketrans("", "", " -")


@dataclass(frozen=True)
class Number:
    raw: str
    valid: bool
    normalised: str  # "+919999912345"; the stripped raw text when invalid
    echo: str | None  # as Exotel writes it back ("09999912345" for India); None when invalid


def parse_number(raw: str) -> Number:
    """Valid means 10-15 ASCII digits after dropping spaces, dashes and one leading + or 0."""
    text = raw.strip().translate(_SEPARATORS)
    plus = text.startswith("+")
    rest = text[1:] if plus or text.startswith("0") else text
    if not (rest.isascii() and rest.isdigit() and 10 <= len(rest) <= 15):
        return Number(raw=raw, valid=False, normalised=text, echo=None)
    # A bare 10-digit number is Indian (the account's home); so is 91 + 10 digits.
    indian = (len(rest) == 10 and not plus) or (len(rest) == 12 and rest.startswith("91"))
    if indian:
        return Number(raw=raw, valid=True, normalised="+91" + rest[-10:], echo="0" + rest[-10:])
    return Number(raw=raw, valid=True, normalised="+" + rest, echo="+" + rest)


# GSM 03.38 basic alphabet and the extension table (each extension char costs two septets).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENSION


def sms_units(body: str, encoding: str | None = None) -> int:
    """Parts billed: GSM-7 160 (153 per part when split), UCS-2 70 (67); ``encoding`` forces."""
    if not body:
        return 0
    gsm = encoding == "plain" or (encoding != "unicode" and all(c in _GSM_ALL for c in body))
    if gsm:
        length = sum(2 if c in _GSM_EXTENSION else 1 for c in body)
        single, part = 160, 153
    else:
        length = sum(2 if ord(c) > 0xFFFF else 1 for c in body)  # UTF-16 surrogate pairs
        single, part = 70, 67
    return 1 if length <= single else math.ceil(length / part)
