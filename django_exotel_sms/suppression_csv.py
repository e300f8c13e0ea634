"""CSV import and export of the suppression list, shared by the admin and ``exotel_suppressions``.

Columns: ``number,reason,scope,source,note,expires_at``; only ``number`` is required
(reason defaults to ``manual``, scope to ``all``). Numbers may be in any format the app
accepts. Importing writes 500 rows per statement (an upsert on number and scope); a bad
line is skipped and reported with its line number, never stopping the others.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, router
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from . import phone, suppression
from .models import Suppression

__all__ = ["COLUMNS", "ImportResult", "export_lines", "import_csv"]

COLUMNS = ("number", "reason", "scope", "source", "note", "expires_at")
CHUNK = 500
LISTED_ERRORS = 20
_REASONS = frozenset(r for r, _ in Suppression.REASON_CHOICES)
_SCOPES = frozenset(s for s, _ in Suppression.SCOPE_CHOICES)


@dataclass
class ImportResult:
    imported: int = 0  # rows written (new or updated)
    invalid: int = 0
    errors: list[str] = field(default_factory=list)  # the first LISTED_ERRORS, with line numbers


def export_lines(qs: QuerySet[Suppression]) -> Iterator[str]:
    """CSV text, line by line (header first), streaming the rows from the database."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(COLUMNS)
    for row in qs.order_by("pk").values_list(*COLUMNS).iterator(chunk_size=2000):
        *rest, expires_at = row
        yield line([*rest, expires_at.isoformat() if expires_at else ""])


def _entry(row: dict[str, str], source: str) -> Suppression:
    number = suppression.normalize((row.get("number") or "").strip())
    reason = (row.get("reason") or "").strip() or Suppression.REASON_MANUAL
    scope = (row.get("scope") or "").strip() or Suppression.SCOPE_ALL
    if reason not in _REASONS:
        raise ValueError(f"reason must be one of {', '.join(sorted(_REASONS))}, not {reason!r}")
    if scope not in _SCOPES:
        raise ValueError(f"scope must be one of {', '.join(sorted(_SCOPES))}, not {scope!r}")
    expires_text = (row.get("expires_at") or "").strip()
    expires_at = parse_datetime(expires_text) if expires_text else None
    if expires_text and expires_at is None:
        raise ValueError(f"expires_at {expires_text!r} is not an ISO date and time")
    if expires_at is not None and is_naive(expires_at):
        expires_at = make_aware(expires_at)
    return Suppression(
        number=number,
        reason=reason,
        scope=scope,
        source=((row.get("source") or "").strip() or source)[:32],
        note=(row.get("note") or "").strip()[:255],
        expires_at=expires_at,
    )


def _write(entries: dict[tuple[str, str], Suppression]) -> int:
    if entries:
        db = router.db_for_write(Suppression)
        # MySQL/MariaDB upsert on any unique key (ON DUPLICATE KEY) and take no target.
        target = (
            {"unique_fields": ["number", "scope"]}
            if connections[db].features.supports_update_conflicts_with_target
            else {}
        )
        Suppression.objects.using(db).bulk_create(
            list(entries.values()),
            update_conflicts=True,
            update_fields=["reason", "source", "note", "expires_at"],
            **target,
        )
    return len(entries)


def import_csv(
    stream: Iterable[str],
    *,
    source: str = "import",
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Add or update the suppressions of a CSV text stream; ``progress(lines read)`` per chunk."""
    result = ImportResult()
    reader = csv.DictReader(stream)
    if not reader.fieldnames or "number" not in [f.strip() for f in reader.fieldnames]:
        result.errors.append("The CSV needs a header line with a 'number' column.")
        result.invalid = 1
        return result
    reader.fieldnames = [f.strip() for f in reader.fieldnames]
    pending: dict[tuple[str, str], Suppression] = {}  # one per number and scope: last wins
    lines = 0
    for lines, row in enumerate(reader, start=1):
        try:
            entry = _entry(row, source)
        except (ValueError, phone.InvalidNumber) as exc:
            result.invalid += 1
            if len(result.errors) < LISTED_ERRORS:
                result.errors.append(f"Line {reader.line_num}: {exc}")
            continue
        pending[(entry.number, entry.scope)] = entry
        if len(pending) >= CHUNK:
            result.imported += _write(pending)
            pending = {}
            if progress:
                progress(lines)
    result.imported += _write(pending)
    if progress:
        progress(lines)
    return result
