from __future__ import annotations

import pytest

from django_exotel_sms.encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_BODY_LENGTH,
    SegmentInfo,
    check_body,
    count_segments,
    detect_encoding,
)

EMOJI = "\U0001f600"  # astral: a UTF-16 surrogate pair
CYR = "ж"  # BMP, not GSM: one UTF-16 unit


def test_alphabet_sizes() -> None:
    # 128 GSM 03.38 code points minus ESC; extension table has 10 printable entries.
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert "€" in GSM7_EXTENSION and "\f" in GSM7_EXTENSION
    assert "`" not in GSM7_BASIC | GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "plain"),
        ("Hello @ £5, ok? ñ à é Δ", "plain"),
        ("braces {} [] ~ | \\ ^ €", "plain"),
        ("line\nbreak\r", "plain"),
        ("a" * 500 + "₹", "unicode"),
        ("price `quoted`", "unicode"),
        ("नमस्ते", "unicode"),
        ("ok " + EMOJI, "unicode"),
        ("ç", "unicode"),  # GSM has capital Ç only
    ],
)
def test_detect_encoding(text: str, expected: str) -> None:
    assert detect_encoding(text) == expected


@pytest.mark.parametrize(
    ("text", "segments", "length", "per_segment", "remaining"),
    [
        ("a" * 160, 1, 160, 160, 0),
        ("a" * 161, 2, 161, 153, 145),
        ("a" * 306, 2, 306, 153, 0),
        ("a" * 307, 3, 307, 153, 152),
        ("a", 1, 1, 160, 159),
        ("€" * 80, 1, 160, 160, 0),
        ("€" * 81, 2, 162, 153, 143),
        ("a" * 159 + "€", 2, 161, 153, 145),
        # 152 + 2 + 152 = 306 septets: division says 2 parts, but the '€' cannot be
        # split at septet 153, so it opens part 2 (2 + 152 = 154 > 153) -> 3 parts.
        ("a" * 152 + "€" + "a" * 152, 3, 306, 153, 152),
        ("a" * 152 + "€" + "a" * 151, 2, 305, 153, 0),
    ],
)
def test_gsm_segments(
    text: str, segments: int, length: int, per_segment: int, remaining: int
) -> None:
    assert count_segments(text) == SegmentInfo("plain", length, segments, per_segment, remaining)


@pytest.mark.parametrize(
    ("text", "segments", "length", "per_segment", "remaining"),
    [
        (CYR * 70, 1, 70, 70, 0),
        (CYR * 71, 2, 71, 67, 63),
        (CYR * 134, 2, 134, 67, 0),
        (CYR * 135, 3, 135, 67, 66),
        (EMOJI * 35, 1, 70, 70, 0),
        (CYR * 69 + EMOJI, 2, 71, 67, 63),
        # 66 + 2 + 66 = 134 units, but the emoji's surrogate pair is not split at
        # unit 67: part 1 = 66, part 2 = 2 + 65, part 3 = 1.
        (CYR * 66 + EMOJI + CYR * 66, 3, 134, 67, 66),
        (CYR * 66 + EMOJI + CYR * 65, 2, 133, 67, 0),
    ],
)
def test_ucs2_segments(
    text: str, segments: int, length: int, per_segment: int, remaining: int
) -> None:
    info = count_segments(text)
    assert info == SegmentInfo("unicode", length, segments, per_segment, remaining)


def test_one_non_gsm_char_switches_whole_message() -> None:
    text = "a" * 100 + "₹"  # would be 1 GSM part; as UCS-2 it exceeds 70
    info = count_segments(text)
    assert info.encoding == "unicode"
    assert info.length == 101
    assert info.segments == 2


def test_extension_chars_count_one_unit_in_ucs2() -> None:
    info = count_segments("€" * 40 + CYR)
    assert info == SegmentInfo("unicode", 41, 1, 70, 29)


def test_empty_text() -> None:
    assert count_segments("") == SegmentInfo("plain", 0, 0, 160, 160)
    assert count_segments("", "unicode") == SegmentInfo("unicode", 0, 0, 70, 70)


def test_force_unicode_on_gsm_text() -> None:
    assert count_segments("a" * 71, "unicode") == SegmentInfo("unicode", 71, 2, 67, 63)
    assert count_segments("a" * 71, "plain") == SegmentInfo("plain", 71, 1, 160, 89)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("abc₹def", "'₹' (U+20B9) at position 3"),
        ("ok " + EMOJI + "₹", "(U+1F600) at position 3"),
        ("`", "'`' (U+0060) at position 0"),
    ],
)
def test_force_plain_rejects_non_gsm(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="not in the GSM 7-bit alphabet") as excinfo:
        count_segments(text, "plain")
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize("encoding", ["ucs2", "PLAIN", ""])
def test_unknown_encoding(encoding: str) -> None:
    with pytest.raises(ValueError, match="Unknown encoding"):
        count_segments("hello", encoding)


def test_check_body_accepts_limits() -> None:
    assert MAX_BODY_LENGTH == 2000
    check_body("x")
    check_body("x" * 2000)
    check_body(EMOJI * 2000)  # Python characters, not UTF-16 units


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_check_body_empty(body: str) -> None:
    with pytest.raises(ValueError, match=r"^SMS body is empty\.$"):
        check_body(body)


@pytest.mark.parametrize(("size", "shown"), [(2001, "2001"), (5000, "5000")])
def test_check_body_too_long(size: int, shown: str) -> None:
    expected = f"SMS body is {shown} characters long; Exotel accepts at most 2000."
    with pytest.raises(ValueError) as excinfo:
        check_body("y" * size)
    assert str(excinfo.value) == expected
