"""Exotel's answer shapes: ``SMSMessage`` objects and ``RestException`` errors, JSON or XML.

Mirrors the documented examples, oddities included: ``DetailedStatusCode`` is a string in
single-send and details answers and a number in bulk answers; ``SmsUnits`` is null until
the message has left Exotel's queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from .store import StoredMessage

__all__ = ["error_body", "message_fields", "messages_body", "rejected_fields"]

Fields = dict[str, object]

_XML_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'


def message_fields(message: StoredMessage, *, as_json: bool, code_as_str: bool) -> Fields:
    uri = f"/v1/Accounts/{message.account_sid}/SMS/Messages/{message.sid}"
    code = message.detailed_status_code
    return {
        "Sid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_,
        "To": message.to,
        "DateCreated": message.date_created,
        "DateUpdated": message.date_updated,
        "DateSent": message.date_sent,
        "Body": message.body,
        "Direction": "outbound-api",
        "Uri": uri + ".json" if as_json else uri,
        "ApiVersion": None,
        "Price": None,
        "Status": message.status,
        "DetailedStatusCode": str(code) if code_as_str else code,
        "DetailedStatus": message.detailed_status,
        "SmsUnits": message.sms_units,
    }


def rejected_fields(
    account_sid: str, *, to: str | None, body: str, code: int, detailed_status: str
) -> Fields:
    """A bulk entry Exotel refused (207): no Sid, no dates, status failed."""
    return {
        "Sid": None,
        "AccountSid": account_sid,
        "From": None,
        "To": to,
        "DateCreated": None,
        "DateUpdated": None,
        "DateSent": None,
        "Body": body,
        "Direction": None,
        "Uri": None,
        "ApiVersion": None,
        "Price": None,
        "Status": "failed",
        "DetailedStatusCode": code,
        "DetailedStatus": detailed_status,
        "SmsUnits": None,
    }


def _xml_element(name: str, value: object) -> str:
    if value is None:
        return f"<{name}/>"
    return f"<{name}>{escape(str(value))}</{name}>"


def _xml_object(name: str, fields: Mapping[str, object]) -> str:
    inner = "".join(_xml_element(key, value) for key, value in fields.items())
    return f"<{name}>{inner}</{name}>"


def messages_body(entries: Sequence[Fields], *, as_json: bool, as_list: bool) -> bytes:
    if as_json:
        wrapped = [{"SMSMessage": e} for e in entries]
        return json.dumps(wrapped if as_list else wrapped[0]).encode()
    inner = "".join(_xml_object("SMSMessage", e) for e in entries)
    return f"{_XML_HEADER}<TwilioResponse>{inner}</TwilioResponse>".encode()


def error_body(http_status: int, code: int | None, message: str, *, as_json: bool) -> bytes:
    fields: Fields = {"Status": http_status, "Message": message}
    if code is not None:  # the docs list some errors without a code ("-")
        fields["Code"] = code
    if as_json:
        return json.dumps({"RestException": fields}).encode()
    inner = _xml_object("RestException", fields)
    return f"{_XML_HEADER}<TwilioResponse>{inner}</TwilioResponse>".encode()
