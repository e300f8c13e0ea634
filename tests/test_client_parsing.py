"""Parsing Exotel's answers: every documented example, error codes, dates, Retry-After.

Plain pytest, no Django settings needed.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

import pytest

from django_exotel_sms import exceptions as exc_mod
from django_exotel_sms.client import (
    IST,
    SmsResult,
    parse_exotel_datetime,
    parse_retry_after,
    parse_sms_response,
)
from django_exotel_sms.exceptions import (
    ERROR_CODES,
    ExotelAccountError,
    ExotelAPIError,
    ExotelAuthError,
    ExotelBadGateway,
    ExotelConnectionError,
    ExotelEndpointError,
    ExotelError,
    ExotelGatewayError,
    ExotelGatewayTimeout,
    ExotelInsufficientBalance,
    ExotelOutcomeUnknown,
    ExotelReadTimeout,
    ExotelRequestError,
    ExotelResponseError,
    ExotelServerError,
    ExotelThrottled,
    ExotelTransportError,
    ExotelTrialLimit,
    ExotelValidationError,
    error_for_response,
)
from django_exotel_sms.status import DETAILED_STATUSES, EXOTEL_STATUSES, describe_code

FIXTURES = Path(__file__).parent / "fixtures" / "exotel_examples"
EXAMPLES = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".json", ".xml"))
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "exotel-sms-api.txt"

TOKEN = "tok3n-S3CRET-value"
API_KEY = "key-0123456789"
CONTEXT = {"method": "POST", "path": "/v1/Accounts/acme1/Sms/send.json"}


def doc_text(name: str) -> str:
    """A fixture exactly as printed in Exotel's documentation page."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def wire_text(name: str) -> str:
    """What Exotel would have sent: the page renders its JSON indentation as U+00A0."""
    return doc_text(name).replace("\xa0", " ")


def parse(name: str, http_status: int | None = None) -> list[SmsResult]:
    content_type = "application/xml" if name.endswith(".xml") else "application/json"
    if http_status is None:
        http_status = 207 if "207" in name else 200
    return parse_sms_response(wire_text(name), http_status=http_status, content_type=content_type)


# --------------------------------------------------------------------------- fixtures


def test_fixture_directory_holds_all_twelve_examples() -> None:
    assert len(EXAMPLES) == 12
    assert sum(p.suffix == ".json" for p in EXAMPLES) == 6


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference not beside the project")
def test_fixtures_are_every_example_verbatim() -> None:
    lines = REFERENCE.read_text(encoding="utf-8").split("\n")
    examples = {line for line in lines if line.startswith(("{ ", "[ ", "<?xml"))}
    fixtures = {p.read_text(encoding="utf-8").rstrip("\n") for p in EXAMPLES}
    assert fixtures == examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_documented_example(path: Path) -> None:
    if "invalid" in path.name:
        # The dynamic-bulk 207 example lacks a comma: a clear error, never a crash.
        text = wire_text(path.name)
        with pytest.raises(ExotelResponseError) as info:
            parse_sms_response(text, http_status=207, content_type="application/json")
        assert info.value.raw_body == text
        assert info.value.http_status == 207
        assert info.value.outcome_unknown and not info.value.retryable
        assert "invalid JSON" in str(info.value)
        return
    results = parse(path.name)
    assert len(results) == (1 if path.name.startswith(("send", "details")) else 2)
    for result in results:
        assert result.status in EXOTEL_STATUSES
        assert isinstance(result.detailed_status_code, int)
        assert result.detailed_status_code in DETAILED_STATUSES
        described = describe_code(result.detailed_status_code)
        assert described is not None and result.detailed_status == described.name
        assert described.status == result.status
        assert result.account_sid == "Exotel"
        assert result.date_sent is None  # null, empty element or the 1970 placeholder
        for when in (result.date_created, result.date_updated):
            assert when is None or when.utcoffset() == timedelta(hours=5, minutes=30)
        assert result.accepted == (result.sid is not None)


def test_verbatim_nbsp_json_is_a_response_error_not_a_crash() -> None:
    text = doc_text("static_bulk_partial_207.json")
    assert "\xa0" in text
    with pytest.raises(ExotelResponseError) as info:
        parse_sms_response(text, http_status=207)
    assert info.value.raw_body == text


def test_single_send_json() -> None:
    (result,) = parse("send_response.json")
    assert result.sid == "0f477d60517e6e6a0f6d9a7e9af8630e"
    assert result.status == "queued"
    assert result.detailed_status_code == 21010  # documented as the string "21010"
    assert result.detailed_status == "PENDING_TO_OPERATOR"
    assert result.sender == "0XXXXXX4890/WEBDEV"
    assert result.to == "0XXXXX30240"
    assert result.body == "Hello World!"
    assert result.direction == "outbound-api"
    assert result.uri == "/v1/Accounts/Exotel/SMS/Messages/0f477d60517e6e6a0f6d9a7e9af8630e.json"
    assert result.date_created == datetime(2017, 3, 3, 14, 14, 20, tzinfo=IST)
    assert result.date_created == datetime(2017, 3, 3, 8, 44, 20, tzinfo=timezone.utc)
    assert result.date_sent is None
    assert result.sms_units is None
    assert result.price is None
    assert result.accepted
    assert result.raw["ApiVersion"] is None and "ApiVersion" in result.raw


def test_details_json_placeholder_date_and_units() -> None:
    (result,) = parse("details_response.json")
    assert result.status == "submitted"
    assert result.detailed_status_code == 21020
    assert result.raw["DateSent"] == "1970-01-01 05:30:00"
    assert result.date_sent is None
    assert result.sms_units == 1


def test_xml_matches_json() -> None:
    (from_json,) = parse("details_response.json")
    (from_xml,) = parse("details_response.xml")
    for name in ("sid", "status", "detailed_status_code", "detailed_status", "sms_units"):
        assert getattr(from_xml, name) == getattr(from_json, name), name
    assert from_xml.date_created == from_json.date_created
    assert from_xml.date_sent is None
    assert from_xml.price is None
    assert from_xml.to == "XXXXX30240"


def test_static_bulk_partial_207_keeps_order() -> None:
    first, second = parse("static_bulk_partial_207.json")
    assert first.sid is None and first.to is None
    assert first.status == "failed"
    assert first.detailed_status_code == 23010
    assert first.detailed_status == "FAILED_INVALID_DESTINATION_NUMBER"
    assert first.date_created is None
    assert not first.accepted
    assert second.sid == "1393e66deb633e7297bcfa9a9da0bb37"
    assert second.status == "queued" and second.accepted
    xml_first, xml_second = parse("static_bulk_partial_207.xml")
    assert (xml_first.sid, xml_first.detailed_status_code) == (None, 23010)
    assert xml_second.sid == second.sid


def test_dynamic_bulk_examples() -> None:
    one, two = parse("dynamic_bulk_response.json")
    assert (one.body, two.body) == ("Hello World one", "Hello World two")
    assert (one.to, two.to) == ("0XXXXX30240", "0XXXXX30241")
    # The XML example spells the field <SMSUnits/>: names match case-insensitively.
    xml_one, _ = parse("dynamic_bulk_response.xml")
    assert "SMSUnits" in xml_one.raw and xml_one.sms_units is None
    failed, ok = parse("dynamic_bulk_partial_207.xml")
    assert failed.to == "XXXXX30240" and failed.sid is None
    assert failed.detailed_status_code == 23000 and failed.detailed_status == "FAILED_MISSING_BODY"
    assert ok.sid == "1393e66deb633e7297bcfa9a9da0bb37" and ok.accepted


def test_dynamic_bulk_invalid_json_after_adding_the_missing_comma() -> None:
    fixed = wire_text("dynamic_bulk_partial_207_invalid.json").replace(
        '"FAILED_MISSING_BODY"', '"FAILED_MISSING_BODY",'
    )
    failed, ok = parse_sms_response(fixed, http_status=207)
    assert failed.body == "" and failed.to == "0XXXXX30240" and failed.detailed_status_code == 23000
    assert ok.uri is not None and "exotel42us3" in ok.uri


def test_numbers_strings_nulls_and_unknown_fields() -> None:
    body = {
        "SMSMessage": {
            "Sid": "abc",
            "Status": "SENT",
            "DetailedStatusCode": 20005,
            "SmsUnits": "2",
            "Price": "0.1200",
            "PriceUnit": "INR",
            "DateSent": "2024-01-02 03:04:05",
            "NewField": {"x": 1},
        }
    }
    (result,) = parse_sms_response(json.dumps(body))
    assert result.status == "sent"
    assert result.detailed_status_code == 20005
    assert result.sms_units == 2
    assert result.price == Decimal("0.1200")
    assert result.raw["PriceUnit"] == "INR" and result.raw["NewField"] == {"x": 1}
    assert result.date_sent == datetime(2024, 1, 2, 3, 4, 5, tzinfo=IST)
    body["SMSMessage"].update({"Price": 0.12, "SmsUnits": None, "DetailedStatusCode": "23999"})
    (again,) = parse_sms_response(json.dumps(body))
    assert again.price == Decimal("0.12")  # not the float's binary expansion
    assert again.sms_units is None
    assert again.detailed_status_code == 23999  # reserved/unknown codes are kept
    body["SMSMessage"].update({"Price": "n/a"})
    assert parse_sms_response(json.dumps(body))[0].price is None


def test_status_spelling_variants_become_the_documented_word() -> None:
    body = {"SMSMessage": {"Sid": "abc", "Status": "Failed_DND", "DetailedStatusCode": 23005}}
    (result,) = parse_sms_response(json.dumps(body))
    assert result.status == "failed-dnd" and not result.accepted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("1970-01-01 05:30:00", None),
        ("1970-01-01 00:00:00", None),
        ("0000-00-00 00:00:00", None),
        ("not a date", None),
        ("2017-03-03 14:14:20", datetime(2017, 3, 3, 14, 14, 20, tzinfo=IST)),
        ("2017-03-03T08:44:20Z", datetime(2017, 3, 3, 8, 44, 20, tzinfo=timezone.utc)),
        ("2017-03-03T14:14:20+05:30", datetime(2017, 3, 3, 8, 44, 20, tzinfo=timezone.utc)),
        ("Fri, 03 Mar 2017 08:44:20 +0000", datetime(2017, 3, 3, 8, 44, 20, tzinfo=timezone.utc)),
    ],
)
def test_parse_exotel_datetime(value: str | None, expected: datetime | None) -> None:
    parsed = parse_exotel_datetime(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        '{"foo": 1}',
        "[1, 2]",
        "<TwilioResponse><Other>1</Other></TwilioResponse>",
        "<TwilioResponse><SMSMessage>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><TwilioResponse/>',
    ],
)
def test_unreadable_2xx_is_a_response_error(text: str) -> None:
    with pytest.raises(ExotelResponseError) as info:
        parse_sms_response(text, http_status=200, context=CONTEXT)
    assert info.value.outcome_unknown
    assert info.value.context == CONTEXT
    assert "/v1/Accounts/acme1/Sms/send.json" in str(info.value)


def test_raw_body_is_trimmed() -> None:
    text = "{" + "x" * 10_000
    with pytest.raises(ExotelResponseError) as info:
        parse_sms_response(text)
    assert info.value.raw_body is not None
    assert info.value.raw_body.startswith(text[:2000]) and len(info.value.raw_body) < 2100


# --------------------------------------------------------------------------- error codes

# The brief's table, written out independently of ERROR_CODES.
EXPECTED_CLASS: dict[int, type[ExotelAPIError]] = {
    40402: ExotelThrottled,
    40403: ExotelThrottled,
    40405: ExotelThrottled,
    35006: ExotelThrottled,
    40404: ExotelTrialLimit,
    34010: ExotelAuthError,
    34001: ExotelAuthError,
    34009: ExotelAuthError,
    40000: ExotelAccountError,
    340030: ExotelAccountError,
    40001: ExotelInsufficientBalance,
    40003: ExotelAccountError,
    40002: ExotelAccountError,
    **{c: ExotelValidationError for c in range(40200, 40211)},
    40300: ExotelValidationError,
    40301: ExotelValidationError,
    40400: ExotelValidationError,
    40406: ExotelValidationError,
    40500: ExotelValidationError,
    40502: ExotelEndpointError,
    40501: ExotelEndpointError,
    35000: ExotelServerError,
    40100: ExotelServerError,
}
EXPECTED_STATUS = {
    40000: 403, 340030: 403, 40001: 403, 40003: 403, 35000: 500, 40100: 500,
    **{c: 400 for c in range(40200, 40211)},
    40300: 400, 40301: 400, 40400: 400, 40402: 429, 40404: 429, 40405: 503, 35006: 503,
    40406: 400, 40502: 405, 40002: 403, 40500: 400, 34009: 403, 34010: 401, 34001: 400,
    40403: 429, 40501: 400,
}  # fmt: skip
RETRYABLE = {40402, 40403, 40405, 35006, 35000, 40100}
THROTTLED = {40402, 40403, 40405, 35006}


def test_every_documented_code_has_a_home() -> None:
    assert set(ERROR_CODES) == set(EXPECTED_CLASS) == set(EXPECTED_STATUS)
    for code, entry in ERROR_CODES.items():
        assert entry.code == code
        assert entry.http_status == EXPECTED_STATUS[code]
        assert entry.exc_class is EXPECTED_CLASS[code]
        assert entry.description


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_error_code_mapping(code: int, fmt: str) -> None:
    entry = ERROR_CODES[code]
    if fmt == "json":
        body = json.dumps(
            {"RestException": {"Status": entry.http_status, "Message": "msg", "Code": code}}
        )
    else:
        body = (
            f"<TwilioResponse><RestException><Status>{entry.http_status}</Status>"
            f"<Message>msg</Message><Code>{code}</Code></RestException></TwilioResponse>"
        )
    with pytest.raises(ExotelAPIError) as info:
        parse_sms_response(body, http_status=entry.http_status, context=CONTEXT, retry_after=3.0)
    exc = info.value
    assert type(exc) is EXPECTED_CLASS[code]
    assert exc.retryable is (code in RETRYABLE)
    assert exc.throttled is (code in THROTTLED)
    assert not exc.outcome_unknown
    assert exc.http_status == entry.http_status
    assert exc.code == code
    assert exc.message == "msg"
    assert exc.retry_after == 3.0
    assert exc.raw_body == body
    text = str(exc)
    assert text.startswith("Exotel rejected POST /v1/Accounts/acme1/Sms/send.json: ")
    assert f"HTTP {entry.http_status}, code {code}: msg" in text
    assert TOKEN not in text and TOKEN not in repr(exc)
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert vars(clone) == vars(exc)
    assert str(clone) == text


def test_error_str_reads_well() -> None:
    exc = error_for_response(
        400,
        40205,
        "From is empty",
        context={"method": "POST", "path": "/v1/Accounts/acme1/Sms/send"},
    )
    assert str(exc) == (
        "Exotel rejected POST /v1/Accounts/acme1/Sms/send: HTTP 400, code 40205: From is empty"
    )
    assert isinstance(exc, ExotelValidationError)
    assert (
        repr(exc) == "ExotelValidationError(http_status=400, code=40205, message='From is empty')"
    )
    bare = error_for_response(401, None, None)
    assert str(bare) == "Exotel rejected the request: HTTP 401"
    throttled = error_for_response(429, 40402, "Too many POST requests.", retry_after=2.5)
    assert str(throttled).endswith("Too many POST requests. (retry after 2.5s)")
    # No message from Exotel: the documented description stands in.
    assert str(error_for_response(403, 40002, "")).endswith("code 40002: Account inactive.")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, None, ExotelAuthError),
        (400, None, ExotelValidationError),  # unsupported version, /Accounts/ missing
        (400, 49999, ExotelValidationError),  # unknown code: class by status, code kept
        (403, None, ExotelAccountError),
        (403, 41111, ExotelAccountError),
        (404, None, ExotelEndpointError),
        (405, None, ExotelEndpointError),
        (429, None, ExotelThrottled),
        (429, 40999, ExotelThrottled),
        (503, None, ExotelThrottled),
        (500, None, ExotelServerError),
        (502, None, ExotelBadGateway),
        (502, 40100, ExotelServerError),  # Exotel's own error with a code: retryable
        (502, 49999, ExotelServerError),
        (504, None, ExotelGatewayTimeout),
        (504, 40100, ExotelServerError),
        (302, None, ExotelAPIError),
    ],
)
def test_status_fallback(status: int, code: int | None, cls: type[ExotelAPIError]) -> None:
    exc = error_for_response(status, code, "x", context=CONTEXT)
    assert type(exc) is cls
    assert exc.code == code and exc.http_status == status


@pytest.mark.parametrize("status", [502, 504])
def test_codeless_proxy_errors_are_outcome_unknown(status: int) -> None:
    # A proxy's 502/504 may come after Exotel accepted the request: resending could
    # send the SMS twice, so the outcome is unknown (uncertain), not retryable.
    exc = error_for_response(status, None, "Bad Gateway")
    assert isinstance(exc, ExotelGatewayError) and isinstance(exc, ExotelServerError)
    assert exc.outcome_unknown and not exc.retryable


@pytest.mark.parametrize("status", [429, 503])
def test_codeless_throttling_stays_retryable(status: int) -> None:
    exc = error_for_response(status, None, "busy")
    assert exc.retryable and not exc.outcome_unknown


def test_exotel_coded_502_stays_retryable() -> None:
    body = '{"RestException": {"Status": 502, "Code": 40100, "Message": "Error Processing"}}'
    with pytest.raises(ExotelServerError) as info:
        parse_sms_response(body, http_status=502, content_type="application/json")
    assert info.value.retryable and not info.value.outcome_unknown


def test_error_pages_and_codeless_answers() -> None:
    html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(ExotelBadGateway) as info:
        parse_sms_response(html, http_status=502, content_type="text/html", context=CONTEXT)
    assert info.value.raw_body == html and info.value.outcome_unknown
    assert not info.value.retryable
    with pytest.raises(ExotelAuthError) as auth:
        parse_sms_response(
            '{"RestException": {"Status": 401, "Message": "Authentication is required to view '
            'this page."}}',
            http_status=401,
        )
    assert auth.value.code is None
    assert auth.value.message == "Authentication is required to view this page."
    with pytest.raises(ExotelThrottled):
        parse_sms_response("", http_status=503)
    # Code as a string; RestException in a 200 answer classified by its own Status.
    with pytest.raises(ExotelValidationError) as inner:
        parse_sms_response('{"RestException": {"Status": "400", "Message": "m"}}')
    assert inner.value.http_status == 400
    with pytest.raises(ExotelInsufficientBalance):
        parse_sms_response('{"RestException": {"Code": "40001"}}', http_status=403)


# --------------------------------------------------------------------------- hierarchy


def test_hierarchy_and_flags() -> None:
    assert issubclass(ExotelRequestError, ValueError)
    for cls in (ExotelConnectionError, ExotelReadTimeout, ExotelOutcomeUnknown):
        assert issubclass(cls, ExotelTransportError)
    assert issubclass(ExotelReadTimeout, ExotelOutcomeUnknown)
    assert issubclass(ExotelTrialLimit, ExotelThrottled)
    assert issubclass(ExotelInsufficientBalance, ExotelAccountError)
    assert issubclass(ExotelGatewayTimeout, ExotelServerError)
    assert ExotelConnectionError.retryable and not ExotelConnectionError.outcome_unknown
    assert ExotelReadTimeout.outcome_unknown and not ExotelReadTimeout.retryable
    assert not ExotelTrialLimit.retryable and not ExotelTrialLimit.throttled
    for name in exc_mod.__all__:
        obj = getattr(exc_mod, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, ExotelError)
            assert isinstance(obj.retryable, bool) and isinstance(obj.throttled, bool)


EXAMPLE_ERRORS: list[ExotelError] = [
    ExotelRequestError("too many numbers"),
    ExotelConnectionError("refused", context=CONTEXT),
    ExotelReadTimeout("no answer", context=CONTEXT),
    ExotelOutcomeUnknown("dropped", context=CONTEXT),
    ExotelResponseError("invalid JSON", http_status=200, raw_body="{", context=CONTEXT),
    ExotelResponseError("invalid JSON", http_status=502, raw_body="<html>", context=CONTEXT),
    error_for_response(429, 40402, "Too many", context=CONTEXT, retry_after=1.0, raw_body="{}"),
    error_for_response(504, None, "Gateway Time-out", context=CONTEXT),
    error_for_response(502, None, "Bad Gateway", context=CONTEXT),
]


@pytest.mark.parametrize("exc", EXAMPLE_ERRORS, ids=lambda e: type(e).__name__)
def test_pickle_and_rebuild_from_args(exc: ExotelError) -> None:
    clone = pickle.loads(pickle.dumps(exc))
    assert type(clone) is type(exc)
    assert vars(clone) == vars(exc)
    assert clone.args == exc.args
    assert str(clone) == str(exc)
    assert clone.outcome_unknown == exc.outcome_unknown
    # Celery's JSON result backend rebuilds exceptions as cls(*args).
    rebuilt = type(exc)(*exc.args)
    assert rebuilt.message == exc.message


def test_response_error_outcome_depends_on_status() -> None:
    assert ExotelResponseError("x", http_status=200).outcome_unknown
    assert ExotelResponseError("x", http_status=207).outcome_unknown
    assert not ExotelResponseError("x", http_status=400).outcome_unknown


# --------------------------------------------------------------------------- Retry-After

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-5", 0.0),
        ("soon", None),
        ("nan", None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Wed, 01 May 2024 12:00:45 GMT", 45.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_http_date_against_the_clock() -> None:
    future = datetime.now(timezone.utc) + timedelta(seconds=90)
    seconds = parse_retry_after(format_datetime(future, usegmt=True))
    assert seconds is not None and 80 <= seconds <= 91


def test_datetime_without_a_utc_equivalent_is_none():
    from django_exotel_sms.client import parse_exotel_datetime

    assert parse_exotel_datetime("9999-12-31T23:59:59-14:00") is None
    assert parse_exotel_datetime("2024-01-02 10:00:00").utcoffset().total_seconds() == 19800
