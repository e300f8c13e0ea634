"""Structured fields for log lines about a message: ``logger.info(..., extra=fields(m))``.

A JSON log formatter (or any handler reading record attributes) gets ``sms_pk``,
``sms_batch``, ``sms_sid``, ``sms_account`` and ``sms_to`` -- the number masked, as in
exports, so logs never hold a full phone number.
"""

from __future__ import annotations

from typing import Any

from .exports import mask_number


def fields(message: Any = None, **values: Any) -> dict[str, Any]:
    """From a message (any object with its attributes) and/or keyword overrides."""
    found = {
        "sms_pk": getattr(message, "pk", None),
        "sms_batch": getattr(message, "batch_id", None),
        "sms_sid": getattr(message, "sid", None),
        "sms_account": getattr(message, "account", None),
        "sms_to": getattr(message, "to", None),
    }
    found.update({f"sms_{key}": value for key, value in values.items()})
    if found["sms_to"]:
        found["sms_to"] = mask_number(str(found["sms_to"]))
    return found
