"""Streaming CSV: one chunk of rows in memory at a time, whatever the number of rows.

Phone numbers are masked unless the caller may see them in full
(``django_exotel_sms.export_full_numbers``). Text cells that a spreadsheet would read
as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from .. import phone
from ..models import SmsMessage

FULL_NUMBERS_PERMISSION = "django_exotel_sms.export_full_numbers"
CHUNK_SIZE = 2000

MESSAGE_COLUMNS: tuple[str, ...] = (
    "id",
    "created_at",
    "to",
    "sender",
    "account",
    "sms_type",
    "template_id",
    "batch_id",
    "status",
    "status_reason",
    "detailed_status_code",
    "detailed_status",
    "segments",
    "sms_units",
    "price",
    "sid",
    "custom_field",
    "attempts",
    "submitted_at",
    "sent_at",
    "error_code",
)
# A batch's per-recipient outcome: who, and what happened to their message.
BATCH_COLUMNS: tuple[str, ...] = (
    "id",
    "to",
    "status",
    "status_reason",
    "detailed_status_code",
    "detailed_status",
    "sms_units",
    "price",
    "sid",
    "custom_field",
    "submitted_at",
    "sent_at",
    "error_code",
    "error_message",
)

_FORMULA = re.compile(r"^[=@\t\r]|^[+-](?![0-9*]+$)")  # numbers, masked or not, pass


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and _FORMULA.match(value):
        return "'" + value
    return value


class _Echo:
    """A file whose write returns what was written, for ``csv.writer`` in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])


def message_rows(
    messages: QuerySet[SmsMessage],
    columns: Sequence[str],
    *,
    full_numbers: bool,
    on_chunk: Callable[[int], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``messages`` as tuples; a server-side cursor where the database has one."""
    to = columns.index("to") if "to" in columns else None
    done = 0
    for row in messages.values_list(*columns).iterator(chunk_size=CHUNK_SIZE):
        if to is not None and not full_numbers:
            row = (*row[:to], phone.mask(row[to] or ""), *row[to + 1 :])
        yield row
        done += 1
        if on_chunk is not None and done % CHUNK_SIZE == 0:
            on_chunk(done)
    if on_chunk is not None:
        on_chunk(done)


def stream(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def stream_messages(
    messages: QuerySet[SmsMessage],
    filename: str,
    *,
    full_numbers: bool,
    columns: Sequence[str] = MESSAGE_COLUMNS,
) -> StreamingHttpResponse:
    return stream(filename, columns, message_rows(messages, columns, full_numbers=full_numbers))


def can_export_full_numbers(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(FULL_NUMBERS_PERMISSION))
