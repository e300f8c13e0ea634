"""Campaigns composed in the admin: read a recipients file, preview it, hand it to send_bulk.

The file is stored once (``storage``) and read streaming, row by row, each time it is
needed: for the preview, for the invalid-rows download, and for the confirm. Every row
is checked by the same ``Composer`` that ``send_bulk`` uses, so the preview's counts are
what the confirm sends; the confirm itself only ever calls ``SmsMessage.objects.send_bulk``.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from django.core.files.storage import FileSystemStorage, Storage

from .compose import Composer, SmsValidationError

if TYPE_CHECKING:
    from .models import SmsTemplate

# Headers recognised when mapping columns automatically (compared case-insensitively).
NUMBER_HEADERS = ("to", "number", "phone", "mobile", "msisdn", "phone_number", "mobile_number")
LANGUAGE_HEADERS = ("language", "lang", "locale")
PREVIEW_ROWS = 5
LISTED_INVALID = 20


def storage() -> Storage:
    """Where uploads wait between the steps: a private directory of this host's temp dir."""
    return FileSystemStorage(
        location=os.path.join(tempfile.gettempdir(), "django_exotel_sms_campaigns"),
        file_permissions_mode=0o600,
    )


@dataclass
class Draft:
    """What the operator composed; kept in their session between the steps (JSON-safe)."""

    token: str
    path: str  # name in ``storage()``
    file_name: str
    template_id: int | None
    body: str
    sender: str
    sms_type: str
    language: str  # for rows without a language column
    name: str
    send_at: str = ""  # ISO 8601, aware; empty: at once
    number_column: int = 0
    language_column: int | None = None
    variable_columns: list[int | None] = field(default_factory=list)
    expected_valid: int | None = None  # what the last preview showed; confirm checks it

    def start_time(self) -> datetime | None:
        return datetime.fromisoformat(self.send_at) if self.send_at else None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Draft:
        return cls(**data)


# -- reading the file ----------------------------------------------------------------------


@contextmanager
def _open_text(path: str) -> Iterator[IO[str]]:
    with storage().open(path, "rb") as raw:
        # utf-8-sig: spreadsheets often write a byte-order mark before the header.
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        try:
            yield text
        finally:
            text.detach()


def read_header(path: str) -> list[str]:
    with _open_text(path) as text:
        return next(csv.reader(text), [])


def data_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for each row after the header, streaming."""
    with _open_text(path) as text:
        reader = csv.reader(text)
        next(reader, None)
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield reader.line_num, cells


def auto_map(headers: Sequence[str], placeholders: int) -> tuple[int, int | None, list[int | None]]:
    """(number column, language column, one column per placeholder) guessed from the header.

    A placeholder takes a column named ``var1`` / ``1`` for its position, else the next
    column not used for anything else.
    """
    names = [h.strip().lower() for h in headers]
    number = next((i for i, n in enumerate(names) if n in NUMBER_HEADERS), 0)
    language = next((i for i, n in enumerate(names) if n in LANGUAGE_HEADERS), None)
    used = {number} | ({language} if language is not None else set())
    variables: list[int | None] = []
    for position in range(1, placeholders + 1):
        named = next(
            (i for i, n in enumerate(names) if n in (f"var{position}", str(position))), None
        )
        variables.append(named)
        if named is not None:
            used.add(named)
    spare = (i for i in range(len(names)) if i not in used)
    return number, language, [v if v is not None else next(spare, None) for v in variables]


# -- checking rows -------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    line: int
    raw_number: str
    message: dict[str, Any] | None  # what send_bulk(messages=...) gets; None when invalid
    fields: dict[str, Any] | None  # the composed message (to, body, encoding, ...)
    reason: str  # why the row is invalid, or "duplicate"


def _cell(cells: Sequence[str], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def check_rows(draft: Draft, template: SmsTemplate | None) -> Iterator[Checked]:
    """Every row, checked as send_bulk will check it; later copies of a number are duplicates."""
    composer = Composer()
    seen: set[str] = set()
    for line, cells in data_rows(draft.path):
        raw = _cell(cells, draft.number_column)
        message: dict[str, Any] = {"to": raw}
        if template is not None:
            message["template"] = template
            message["context"] = [_cell(cells, i) for i in draft.variable_columns]
            language = _cell(cells, draft.language_column) or draft.language
            if language:
                message["language"] = language
        else:
            message["body"] = draft.body
        if draft.sender:
            message["sender"] = draft.sender
        if draft.sms_type:
            message["sms_type"] = draft.sms_type
        try:
            fields = composer.compose(
                raw,
                message.get("body"),
                template=template,
                context=message.get("context"),
                sender=message.get("sender"),
                sms_type=message.get("sms_type"),
                language=message.get("language"),
            )
        except SmsValidationError as exc:
            reason = "; ".join(
                f"{key}: {' '.join(texts)}" for key, texts in exc.message_dict.items()
            )
            yield Checked(line, raw, None, None, reason)
            continue
        if fields["to"] in seen:
            yield Checked(line, raw, None, fields, "duplicate")
            continue
        seen.add(fields["to"])
        yield Checked(line, raw, message, fields, "")


def messages_to_send(draft: Draft, template: SmsTemplate | None) -> Iterator[dict[str, Any]]:
    """The valid, first-seen rows as send_bulk's ``messages``, streaming."""
    return (row.message for row in check_rows(draft, template) if row.message is not None)


def write_invalid_csv(draft: Draft, template: SmsTemplate | None, out: Any) -> None:
    """The rows the campaign leaves out (invalid and duplicates), with the reason."""
    writer = csv.writer(out)
    writer.writerow(["line", "number", "reason"])
    for row in check_rows(draft, template):
        if row.message is None:
            writer.writerow([row.line, row.raw_number, row.reason])


# -- the preview ---------------------------------------------------------------------------


@dataclass
class Summary:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    units: int = 0
    encodings: Counter[str] = field(default_factory=Counter)
    segments: Counter[int] = field(default_factory=Counter)
    languages: Counter[tuple[str, str]] = field(default_factory=Counter)  # (text start, DLT id)
    reasons: Counter[str] = field(default_factory=Counter)
    first: list[dict[str, Any]] = field(default_factory=list)
    invalid_listed: list[Checked] = field(default_factory=list)
    suppressed: int = 0  # refused by the send gate (suppression list, allow-list)
    schedule: datetime | None = None  # None: at once; else deferred to a window's opening


def summarize(draft: Draft, template: SmsTemplate | None) -> Summary:
    summary = Summary()
    valid_numbers: list[str] = []
    for row in check_rows(draft, template):
        summary.rows += 1
        if row.message is None:
            if row.reason == "duplicate":
                summary.duplicates += 1
                continue
            summary.invalid += 1
            summary.reasons[row.reason.split(":", 1)[0]] += 1
            if len(summary.invalid_listed) < LISTED_INVALID:
                summary.invalid_listed.append(row)
            continue
        fields = row.fields
        assert fields is not None
        summary.valid += 1
        summary.units += fields["segments"]
        summary.encodings[fields["encoding"]] += 1
        summary.segments[fields["segments"]] += 1
        summary.languages[(row.message.get("language") or "", fields["dlt_template_id"])] += 1
        valid_numbers.append(fields["to"])
        if len(summary.first) < PREVIEW_ROWS:
            summary.first.append({"line": row.line, **fields, **row.message})
    sms_type = draft.sms_type or (template.sms_type if template is not None else "")
    summary.suppressed = suppressed_count(valid_numbers, sms_type)
    summary.schedule = schedule_note(valid_numbers, sms_type, draft.start_time())
    return summary


# -- what the send gate will say ------------------------------------------------------------


def suppressed_count(numbers: Iterable[str], sms_type: str) -> int:
    """How many valid recipients the send gate will refuse (suppression list, allow-list).

    The same set-based check ``send_bulk`` makes: one query per thousand numbers.
    """
    from . import suppression

    refused = 0
    items = [(number, number, sms_type) for number in numbers]
    for start in range(0, len(items), 1000):
        refused += len(suppression.refusals(items[start : start + 1000]))
    return refused


def schedule_note(
    numbers: Iterable[str], sms_type: str, send_at: datetime | None = None
) -> datetime | None:
    """When the campaign would start: None for at once, else ``send_at`` or, if a sending
    window is closed then, its next opening."""
    from django.utils import timezone

    from . import scheduling

    start = send_at or timezone.now()
    deferred = scheduling.deferred_until(sms_type, numbers, start)
    return deferred or send_at
