"""GSM-7 / UCS-2 detection and SMS segment counting.

Exotel picks the encoding itself when ``EncodingType`` is absent and bills per part
(``SmsUnits``), so we mirror its rules to show users the cost before sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "MAX_BODY_LENGTH",
    "SegmentInfo",
    "check_body",
    "count_segments",
    "detect_encoding",
]

# GSM 03.38 default alphabet, in code-point order 0x00-0x7F; 0x1B (ESC) is omitted
# because it is the escape to the extension table, not a character.
GSM7_BASIC: frozenset[str] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

# Extension table: each costs ESC + char, i.e. two septets.
GSM7_EXTENSION: frozenset[str] = frozenset("^{}\\[~]|€\f")

MAX_BODY_LENGTH = 2000  # Exotel's limit on Body, in characters

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

# (single-part capacity, per-part capacity when concatenated); multipart loses
# room to the 6-byte UDH (7 septets / 3 UTF-16 units).
_LIMITS: dict[str, tuple[int, int]] = {"plain": (160, 153), "unicode": (70, 67)}

Encoding = Literal["plain", "unicode"]


@dataclass(frozen=True)
class SegmentInfo:
    """How a text is split into SMS parts."""

    encoding: str  # "plain" (GSM-7) or "unicode" (UCS-2), Exotel's EncodingType words
    length: int  # septets for GSM (extension=2), UTF-16 code units for UCS-2 (astral=2)
    segments: int  # parts billed; 0 for empty text
    per_segment: int  # capacity of each part (single-part size when segments <= 1)
    remaining: int  # units still free in the last part


def detect_encoding(text: str) -> Encoding:
    """Return "plain" if every character is in GSM-7 (basic or extension), else "unicode"."""
    return "plain" if _first_non_gsm(text) is None else "unicode"


def _first_non_gsm(text: str) -> int | None:
    for index, char in enumerate(text):
        if char not in _GSM7_ALL:
            return index
    return None


def _unit_costs(text: str, encoding: str) -> list[int]:
    if encoding == "plain":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    # Python str holds code points; above the BMP UTF-16 needs a surrogate pair.
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def count_segments(text: str, encoding: str | None = None) -> SegmentInfo:
    """Count SMS parts for ``text``; ``encoding`` forces "plain" or "unicode".

    Raises ValueError for an unknown encoding, or when "plain" is forced on text
    that GSM-7 cannot carry.
    """
    if encoding is None:
        encoding = detect_encoding(text)
    elif encoding not in _LIMITS:
        raise ValueError(f"Unknown encoding {encoding!r}; expected 'plain' or 'unicode'.")
    elif encoding == "plain":
        bad = _first_non_gsm(text)
        if bad is not None:
            char = text[bad]
            raise ValueError(
                f"Character {char!r} (U+{ord(char):04X}) at position {bad} is not in the "
                "GSM 7-bit alphabet; it cannot be sent with encoding 'plain'."
            )

    single, multi = _LIMITS[encoding]
    costs = _unit_costs(text, encoding)
    length = sum(costs)
    if length == 0:
        return SegmentInfo(encoding, 0, 0, single, single)
    if length <= single:
        return SegmentInfo(encoding, length, 1, single, single - length)

    # Greedy packing: a 2-unit character (ESC pair or surrogate pair) is never split,
    # so it opens a new part when only one unit is left; division would undercount.
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return SegmentInfo(encoding, length, segments, multi, multi - used)


def check_body(body: str) -> None:
    """Reject bodies Exotel would refuse: empty (40200) or over 2000 characters."""
    if not body or not body.strip():
        raise ValueError("SMS body is empty.")
    if len(body) > MAX_BODY_LENGTH:
        raise ValueError(
            f"SMS body is {len(body)} characters long; Exotel accepts at most {MAX_BODY_LENGTH}."
        )
