"""Reading and validating send requests, with Exotel's documented error codes.

Pure functions over the decoded form (a list of pairs, repeated keys kept), so the rules
can be read and tested without a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .phones import Number, parse_number

__all__ = [
    "ApiError",
    "Draft",
    "SendRequest",
    "error",
    "form_recipients",
    "parse_bulksend",
    "parse_send",
]

MAX_RECIPIENTS = 100
SMS_TYPES = frozenset({"transactional", "transactional_opt_in", "promotional"})
ENCODINGS = frozenset({"plain", "unicode"})
DEFAULT_SENDER = "SANDBOX"  # bulksend without any From: "default approved SENDER ID"

# Documented messages, by code.
MESSAGES: dict[int, str] = {
    34001: "Bad or missing parameters in request.;",
    34009: "Action forbidden on given resource;",
    34010: "Unauthorized;",
    35000: "Internal Server Error",
    40100: "Error Processing Request",
    40200: "Message body cannot be empty.",
    40201: "Invalid parameters: Messages is a mandatory field",
    40202: "Message body is invalid.",
    40203: "All the destination numbers are invalid: {numbers}",
    40204: "Invalid parameters: SmsType is not set correctly",
    40205: "Empty From field in the request",
    40207: "Array passed as Value in params. Expecting String",
    40208: "Invalid parameters: Messages has to be an array",
    40209: (
        "Encoding type is not properly set. Please check the encoding type again before "
        "sending the request for Msg=[{body}]"
    ),
    40210: "Invalid parameters: From is a mandatory field",
    40400: "Not more than 100 SMSs are allowed in one API request.",
    40402: "Too many POST requests.",
    40403: "Too many GET requests.",
    40405: "Service Unavailable",
    40406: "Not more than 100 SMSs are allowed in one API request.",
    40500: "Invalid Parameters",
    40501: "Invalid parameters",
    40502: "This method is not supported",
}
HTTP_STATUS: dict[int, int] = {
    34001: 400,
    34009: 403,
    34010: 401,
    35000: 500,
    40100: 500,
    40402: 429,
    40403: 429,
    40405: 503,
    40502: 405,
}


@dataclass(frozen=True)
class ApiError:
    http_status: int
    code: int | None
    message: str


def error(code: int, **values: str) -> ApiError:
    return ApiError(HTTP_STATUS.get(code, 400), code, MESSAGES[code].format(**values))


@dataclass(frozen=True)
class Draft:
    """One recipient of a request, before the sandbox decides its fate."""

    to: str | None  # as given; None when the bulk entry had no To
    number: Number | None
    body: str
    from_: str
    sms_type: str | None
    dlt_template_id: str | None
    reject_code: int | None  # 23010 invalid number / 23000 missing body, refused at API time


@dataclass(frozen=True)
class SendRequest:
    drafts: list[Draft]
    as_list: bool  # answer a JSON array (bulk) rather than one object
    dynamic: bool
    encoding: str | None
    status_callback: str | None
    custom_field: str | None
    dlt_entity_id: str | None
    priority: str | None


Form = Sequence[tuple[str, str]]

# Parameters Exotel reads as single strings; an array there is 40207.
_SEND_STRINGS = (
    "From",
    "EncodingType",
    "StatusCallback",
    "DltEntityId",
    "DltTemplateId",
    "SmsType",
    "CustomField",
    "Priority",
    "ShortenUrl",
)
_BULK_STRINGS = tuple(n for n in _SEND_STRINGS if n not in ("DltTemplateId", "SmsType"))
_ENTRY = re.compile(r"\[(\d+)\]\[([^\[\]]+)\](.*)", re.DOTALL)


class _Params:
    """The form grouped PHP-style: ``To[]``/``To[3]``/repeated ``To`` are arrays."""

    def __init__(self, form: Form) -> None:
        self.scalars: dict[str, list[str]] = {}
        self.arrays: dict[str, list[tuple[str, str]]] = {}  # base -> (suffix, value)
        for key, value in form:
            base, bracket, rest = key.partition("[")
            if bracket:
                self.arrays.setdefault(base, []).append(("[" + rest, value))
            else:
                self.scalars.setdefault(key, []).append(value)

    def is_array(self, name: str) -> bool:
        return name in self.arrays or len(self.scalars.get(name, ())) > 1

    def get(self, name: str) -> str | None:
        values = self.scalars.get(name)
        return values[0] if values else None


def _optional(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def _check_common(params: _Params, strings: Sequence[str]) -> ApiError | None:
    for name in strings:
        if params.is_array(name):
            return error(40207)
    return None


def _check_encoding(encoding: str | None, body: str) -> ApiError | None:
    if encoding is not None and encoding not in ENCODINGS:
        return error(40209, body=body)
    return None


def _check_sms_type(sms_type: str | None) -> ApiError | None:
    if sms_type is not None and sms_type not in SMS_TYPES:
        return error(40204)
    return None


def parse_send(form: Form) -> SendRequest | ApiError:
    """``/Sms/send``: one ``To`` or a static bulk (``To[]``, repeated ``To``)."""
    params = _Params(form)
    if params.is_array("Body"):
        return error(40202)
    problem = _check_common(params, _SEND_STRINGS)
    if problem:
        return problem
    from_ = params.get("From")
    if from_ is None:
        return error(40210)
    if not from_.strip():
        return error(40205)
    body = params.get("Body") or ""
    if not body.strip():
        return error(40200)
    encoding = _optional(params.get("EncodingType"))
    sms_type = _optional(params.get("SmsType"))
    problem = _check_encoding(encoding, body) or _check_sms_type(sms_type)
    if problem:
        return problem
    tos = params.scalars.get("To", []) + [value for _, value in params.arrays.get("To", [])]
    if len(tos) > MAX_RECIPIENTS:
        return error(40406)
    template = _optional(params.get("DltTemplateId"))
    drafts = []
    for to in tos:
        number = parse_number(to)
        reject = None if number.valid else 23010
        drafts.append(Draft(to, number, body, from_, sms_type, template, reject))
    return SendRequest(
        drafts=drafts,
        as_list="To" in params.arrays or len(tos) > 1,
        dynamic=False,
        encoding=encoding,
        status_callback=_optional(params.get("StatusCallback")),
        custom_field=_optional(params.get("CustomField")),
        dlt_entity_id=_optional(params.get("DltEntityId")),
        priority=_optional(params.get("Priority")),
    )


def parse_bulksend(form: Form) -> SendRequest | ApiError:
    """``/Sms/bulksend``: ``Messages[i][To]``, ``Messages[i][Body]`` and optional extras."""
    params = _Params(form)
    problem = _check_common(params, _BULK_STRINGS)
    if problem:
        return problem
    if "Messages" in params.scalars:
        return error(40208)
    entries = params.arrays.get("Messages")
    if not entries:
        return error(40201)
    messages: dict[int, dict[str, list[str]]] = {}
    for suffix, value in entries:
        match = _ENTRY.fullmatch(suffix)
        if match is None:
            return error(40208)
        index, name, rest = match.groups()
        if rest:
            return error(40202 if name == "Body" else 40207)
        messages.setdefault(int(index), {}).setdefault(name, []).append(value)
    if len(messages) > MAX_RECIPIENTS:
        return error(40400)
    encoding = _optional(params.get("EncodingType"))
    default_from = _optional(params.get("From")) or DEFAULT_SENDER
    drafts = []
    for index in sorted(messages):  # request order is index order
        fields = messages[index]
        for name, values in fields.items():
            if len(values) > 1:
                return error(40202 if name == "Body" else 40207)
        to = fields.get("To", [None])[0]
        body = fields.get("Body", [""])[0]
        sms_type = _optional(fields.get("SmsType", [None])[0])
        problem = _check_encoding(encoding, body) or _check_sms_type(sms_type)
        if problem:
            return problem
        number = parse_number(to) if to is not None else None
        reject = None
        if number is None or not number.valid:
            reject = 23010
        elif not body.strip():
            reject = 23000
        drafts.append(
            Draft(
                to=to,
                number=number,
                body=body,
                from_=_optional(fields.get("From", [None])[0]) or default_from,
                sms_type=sms_type,
                dlt_template_id=_optional(fields.get("DltTemplateId", [None])[0]),
                reject_code=reject,
            )
        )
    return SendRequest(
        drafts=drafts,
        as_list=True,
        dynamic=True,
        encoding=encoding,
        status_callback=_optional(params.get("StatusCallback")),
        custom_field=_optional(params.get("CustomField")),
        dlt_entity_id=_optional(params.get("DltEntityId")),
        priority=_optional(params.get("Priority")),
    )


def form_recipients(form: Form) -> list[str]:
    """Every number a request names, normalised where possible (for the request log)."""
    found = []
    for key, value in form:
        if (
            key == "To"
            or key.startswith("To[")
            or (key.startswith("Messages[") and key.endswith("[To]"))
        ):
            found.append(parse_number(value).normalised)
    return found
