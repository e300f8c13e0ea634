"""Structured fields for log lines about a message: ``logger.info(..., extra=fields(m))``.

A JSON log formatter (or any handler reading record attributes) gets ``sms_pk``,
``sms_batch``, ``sms_sid``, ``sms_account`` and ``sms_to`` -- the number masked, as in
exports, so logs never hold a full phone number.
"""

from __future__ import annotations

from typing import Any

from .phone import mask


def fields(message: Any = None, **values: Any) -> dict[str, Any]:
    """From a message (any object, or a row dict, with its attributes) and/or keywords."""
    if isinstance(message, dict):
        message = _Row(message)
    found = {
        "sms_pk": getattr(message, "pk", None),
        "sms_batch": getattr(message, "batch_id", None),
        "sms_sid": getattr(message, "sid", None),
        "sms_account": getattr(message, "account", None),
        "sms_to": getattr(message, "to", None),
    }
    found.update({f"sms_{key}": value for key, value in values.items()})
    if found["sms_to"]:
        found["sms_to"] = mask(str(found["sms_to"]))
    return found


class _Row:
    """A claimed row (``sending.ROW_FIELDS`` values) read like a message."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.pk = row.get("pk")
        self.batch_id = row.get("batch_id")
        self.sid = row.get("sid")
        self.account = row.get("account")
        self.to = row.get("to")
