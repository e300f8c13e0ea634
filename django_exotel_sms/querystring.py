"""Reading numbers from a query string (REST filters, admin filters) without surprises.

``str.isdigit()`` accepts "²" and other digits that ``int()`` refuses, and an id beyond
the column's range can match no row (SQLite cannot even bind it). Both are the caller's
mistake, answered with a 400, never a 500.
"""

from __future__ import annotations

import re

__all__ = ["MAX_CODE", "MAX_ID", "NUL", "whole_number"]

MAX_ID = 2**63 - 1  # BigAutoField
MAX_CODE = 2**31 - 1  # IntegerField (detailed status codes)
NUL = "\x00"  # no text column can hold it; PostgreSQL refuses it even in a comparison
_WHOLE = re.compile(r"-?[0-9]+", re.ASCII)


def whole_number(raw: str, low: int, high: int) -> int | None:
    """``raw`` (ASCII digits, optional minus) as an int within [low, high], else None."""
    if not _WHOLE.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None
