"""Sender (``From``) validation, shared by the Python API and the admin's sender IDs.

Exotel's ``From`` is a DLT sender ID (header) or an ExoPhone. A header is 6 letters
(transactional) or 6 digits (promotional); promotional SMS to Indian numbers need a
numeric header, which Exotel otherwise refuses with 40206 / 40300.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

__all__ = ["header_problem", "is_exophone", "sender_problem"]

_HEADER_RE = re.compile(r"^(?:[A-Za-z]{6}|[0-9]{6})$")
# An ExoPhone as Exotel shows it: 08030752400, +918030752400 (10 to 15 digits).
_EXOPHONE_RE = re.compile(r"^\+?[0-9]{10,15}$")


def header_problem(header: str) -> str | None:
    """Why ``header`` is not a sender ID (header), or None."""
    if _HEADER_RE.match(header or ""):
        return None
    return _(
        "A sender ID is 6 letters (transactional) or 6 digits (promotional); got %(header)r."
    ) % {"header": header}


def is_exophone(sender: str) -> bool:
    return bool(_EXOPHONE_RE.match(sender or ""))


def sender_problem(sender: str, sms_type: str | None, *, to_india: bool) -> str | None:
    """Why ``sender`` cannot send a message of ``sms_type``, or None."""
    if sms_type == "promotional" and to_india:
        if _HEADER_RE.match(sender) and sender.isdigit():
            return None
        return (
            "Promotional SMS to Indian numbers need a 6-digit numeric sender ID "
            f"(Exotel refuses others with 40206/40300); got {sender!r}."
        )
    if is_exophone(sender):
        return None
    return header_problem(sender)
