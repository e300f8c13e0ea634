"""``manage.py exotel_send``: one SMS, a template SMS, or a bulk from a CSV file.

Examples::

    manage.py exotel_send --to +919876543210 --body "Hello"
    manage.py exotel_send --to +919876543210 --template otp --var 1=482913
    manage.py exotel_send --to +919876543210 --template shipped --language hi --var 1=Asha
    manage.py exotel_send --csv people.csv                   # columns: to, body
    manage.py exotel_send --csv people.csv --template order  # columns: to, var1, var2...
                                                             # (and language, per row)
    manage.py exotel_send --to +919876543210 --body "Hi" --send-at 2026-03-03T09:00+05:30

Everything goes through ``SmsMessage.objects`` (validation included): an invalid row saves
nothing and exits with status 1. When the command knows the outcome (``--sync`` or
``--wait``), a message Exotel refused, that failed or whose outcome is unknown is listed
with Exotel's code and text, and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ... import scheduling, status
from ...compose import SmsValidationError
from ...models import SmsBatch, SmsMessage
from ...suppression import RecipientLimitExceeded

# Optional per-message columns, passed through to send_bulk(messages=[...]).
PER_MESSAGE_COLUMNS = ("sender", "sms_type", "dlt_template_id", "language")
BAR_WIDTH = 30
MAX_LISTED_PROBLEMS = 20
# Accepted by Exotel: how a --sync run that went well ends (delivery is reported later).
ACCEPTED_STATUSES = frozenset({status.QUEUED, status.SENDING, status.SUBMITTED, status.SENT})


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """``["1=482913", "var2=Asha"]`` -> ``{"1": "482913", "var2": "Asha"}``."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--var takes KEY=VALUE (e.g. --var 1=482913), not {pair!r}.")
        context[key.strip()] = value
    return context


def aware_datetime(value: str) -> datetime:
    """An ISO 8601 date and time with its UTC offset (a bare time is ambiguous)."""
    parsed = parse_datetime(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {value!r}")
    if timezone.is_naive(parsed):
        raise argparse.ArgumentTypeError(f"give the UTC offset too, e.g. {value}+05:30 or {value}Z")
    return parsed


def _waiting(message: SmsMessage) -> str:
    if message.deferred_until is None:
        return ""
    why = "sending window" if message.status_reason == scheduling.WINDOW else "scheduled"
    return f", deferred until {message.deferred_until.isoformat()} ({why})"


def _is_var_column(name: str) -> bool:
    digits = name[3:] if name.startswith("var") else name
    return digits.isdigit() and not digits.startswith("0")


def csv_messages(handle: TextIO, *, template: bool) -> Iterator[dict[str, Any]]:
    """Stream ``send_bulk(messages=...)`` items from a CSV file, checking its header first."""
    reader = csv.DictReader(handle)
    header = [name.strip() for name in reader.fieldnames or []]
    if "to" not in header:
        raise CommandError("The CSV file needs a header row with a 'to' column.")
    reader.fieldnames = header
    allowed = {"to", "body", *PER_MESSAGE_COLUMNS}
    var_columns = [name for name in header if _is_var_column(name)]
    unknown = [name for name in header if name not in allowed and name not in var_columns]
    if unknown:
        raise CommandError(
            f"Unknown CSV column(s): {', '.join(map(repr, unknown))}. Use 'to', 'body', "
            f"{', '.join(map(repr, PER_MESSAGE_COLUMNS))} and, with --template, the template "
            "variables as 'var1', 'var2'... or '1', '2'..."
        )
    if var_columns and not template:
        raise CommandError("The CSV has template variable columns: pass --template NAME.")
    if "language" in header and not template:
        raise CommandError(
            "The CSV has a 'language' column, which picks a template's variant: "
            "pass --template NAME."
        )
    if "body" not in header and not template:
        raise CommandError("The CSV needs a 'body' column, or pass --template NAME.")
    for row in reader:
        line = reader.line_num
        if None in row:
            raise CommandError(f"CSV line {line} has more fields than the header.")
        item: dict[str, Any] = {"to": (row.get("to") or "").strip()}
        if row.get("body"):
            item["body"] = row["body"]
        if var_columns:
            item["context"] = {name: row[name] for name in var_columns}
        for name in PER_MESSAGE_COLUMNS:
            if row.get(name):
                item[name] = row[name].strip()
        yield item


def status_counts(messages: QuerySet[SmsMessage]) -> Counter[str]:
    return Counter(dict(messages.values_list("status").annotate(n=Count("pk")).order_by()))


def final_count(counts: Mapping[str, int]) -> int:
    return sum(n for s, n in counts.items() if status.is_terminal(s))


def progress_bar(counts: Mapping[str, int], total: int) -> str:
    final = final_count(counts)
    filled = int(BAR_WIDTH * final / total) if total else BAR_WIDTH
    detail = ", ".join(f"{s} {n}" for s, n in sorted(counts.items(), key=lambda kv: kv[0]))
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {final}/{total} final ({detail})"


class _LineHandler(logging.Handler):
    """Writes each log record's message as one line (exotel_send --sync's retry progress)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        super().__init__(logging.INFO)
        self._write = write

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(record.getMessage())
        except Exception:  # a broken pipe must not break the send
            self.handleError(record)


@contextlib.contextmanager
def retry_progress(write: Callable[[str], object]) -> Iterator[None]:
    """Show the sending layer's retry lines (reason and wait) while sending in-process."""
    from ... import sending

    sending_logger = logging.getLogger(sending.__name__)
    handler = _LineHandler(write)
    level = sending_logger.level
    if sending_logger.getEffectiveLevel() > logging.INFO:
        sending_logger.setLevel(logging.INFO)
    sending_logger.addHandler(handler)
    try:
        yield
    finally:
        sending_logger.removeHandler(handler)
        sending_logger.setLevel(level)


def problem_lines(bad: QuerySet[SmsMessage]) -> list[str]:
    """One line per message that did not go well, with Exotel's code and text."""
    lines = []
    for message in bad[:MAX_LISTED_PROBLEMS]:
        line = f"SMS {message.pk} to {message.to}: {message.status}"
        code = message.error_code or message.detailed_status_code
        text = message.error_message or message.detailed_status
        if code is not None:
            line += f", Exotel code {code}"
        if text:
            line += f": {text}"
        lines.append(line)
    extra = bad.count() - len(lines)
    if extra > 0:
        lines.append(f"... and {extra} more")
    return lines


class Command(BaseCommand):
    help = "Send one SMS (--to) or a bulk from a CSV file (--csv), optionally from a template."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--to", help="recipient number (E.164, or national for the region)")
        target.add_argument(
            "--csv",
            type=Path,
            help="CSV file with a header: 'to' and 'body', or 'to' and template variables",
        )
        parser.add_argument("--body", help="the text (without --template)")
        parser.add_argument("--template", help="SmsTemplate name")
        parser.add_argument(
            "--language",
            help="send the template's variant in this language (e.g. hi, hi-IN), along "
            "TEMPLATE_LANGUAGE_FALLBACK; with --csv, for rows without a 'language' column value",
        )
        parser.add_argument(
            "--var",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="template variable by position: 1=..., var2=... (repeat)",
        )
        parser.add_argument("--sender", help="sender ID (default: template's or DEFAULT_SENDER)")
        parser.add_argument(
            "--sms-type", choices=["transactional", "transactional_opt_in", "promotional"]
        )
        parser.add_argument("--dlt-template-id")
        parser.add_argument("--custom-field")
        parser.add_argument("--account", help="named account from EXOTEL_SMS['ACCOUNTS']")
        parser.add_argument("--name", default="", help="batch name (with --csv)")
        parser.add_argument(
            "--send-at",
            type=aware_datetime,
            help="send at this time, ISO 8601 with its offset (e.g. 2026-03-03T09:00+05:30)",
        )
        parser.add_argument(
            "--expires-at",
            type=aware_datetime,
            help="never send after this time (ISO 8601 with offset): the message expires",
        )
        parser.add_argument(
            "--valid-for",
            type=float,
            metavar="SECONDS",
            help="seconds it may wait (from --send-at or now) before it expires",
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="send in this process instead of through Celery",
        )
        parser.add_argument("--wait", action="store_true", help="wait until every message is final")
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)"
        )
        parser.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        shared = {
            "sender": options["sender"],
            "sms_type": options["sms_type"],
            "dlt_template_id": options["dlt_template_id"],
            "custom_field": options["custom_field"],
            "account": options["account"],
            "send_at": options["send_at"],
            "expires_at": options["expires_at"],
            "valid_for": options["valid_for"],
            "send_async": not options["sync"],
            "language": options["language"],
        }
        if options["language"] and not options["template"]:
            raise CommandError("--language needs --template.")
        progress = (
            retry_progress(self.stderr.write) if options["sync"] else contextlib.nullcontext()
        )
        try:
            with progress:
                if options["csv"] is not None:
                    messages = self._send_csv(options, shared)
                else:
                    messages = self._send_one(options, shared)
        except SmsValidationError as exc:
            lines = [
                f"  {field}: {text}" for field, texts in exc.message_dict.items() for text in texts
            ]
            if options["csv"] is not None:
                lines.append("  (message N is the CSV's N-th row after the header)")
            raise CommandError("Invalid input; nothing was saved:\n" + "\n".join(lines)) from exc
        except RecipientLimitExceeded as exc:
            raise CommandError(f"{exc} Nothing was saved.") from exc

        total = messages.count()
        if options["wait"]:
            done = self._wait(messages, total, options["timeout"], options["poll"])
        else:
            done = final_count(status_counts(messages)) == total
        self._summary(messages, total)
        if options["wait"] and not done:
            raise CommandError(
                f"Timed out after {options['timeout']:.0f} s: some messages are not final yet."
            )
        if options["sync"] or options["wait"]:
            # --sync ends once Exotel answered (accepted is success); --wait once all are final.
            good = {status.SENT} if options["wait"] else ACCEPTED_STATUSES
            bad = messages.exclude(status__in=good).order_by("pk")
            if bad.exists():
                self.stderr.write("\n".join(problem_lines(bad)))
                what = "delivered" if options["wait"] else "accepted by Exotel"
                raise CommandError(f"{bad.count()} of {total} message(s) not {what}; see above.")

    def _send_one(self, options: dict[str, Any], shared: dict[str, Any]) -> QuerySet[SmsMessage]:
        if options["body"] is None and not options["template"]:
            raise CommandError("Give --body TEXT or --template NAME.")
        if options["var"] and not options["template"]:
            raise CommandError("--var needs --template.")
        message = SmsMessage.objects.send(
            options["to"],
            options["body"],
            template=options["template"] or None,
            context=parse_vars(options["var"]) if options["template"] else None,
            **shared,
        )
        self.stdout.write(
            f"Saved SMS {message.pk} to {message.to} ({message.status}){_waiting(message)}."
        )
        return SmsMessage.objects.filter(pk=message.pk)

    def _send_csv(self, options: dict[str, Any], shared: dict[str, Any]) -> QuerySet[SmsMessage]:
        if options["body"] is not None or options["var"]:
            raise CommandError("With --csv the text comes from the file: drop --body and --var.")
        path: Path = options["csv"]
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        with handle:
            try:
                batch: SmsBatch = SmsMessage.objects.send_bulk(
                    messages=csv_messages(handle, template=bool(options["template"])),
                    template=options["template"] or None,
                    name=options["name"] or path.name,
                    **shared,
                )
            except UnicodeDecodeError as exc:
                raise CommandError(f"{path} is not UTF-8 text: {exc}.") from exc
            except csv.Error as exc:
                raise CommandError(f"{path} is not a readable CSV file: {exc}.") from exc
        self.stdout.write(f"Saved batch {batch.pk}: {batch.total} messages.")
        return SmsMessage.objects.filter(batch=batch.pk)

    def _wait(
        self, messages: QuerySet[SmsMessage], total: int, timeout: float, poll: float
    ) -> bool:
        deadline = time.monotonic() + timeout
        tty = self.stderr.isatty()
        last_line = ""
        while True:
            counts = status_counts(messages)
            line = progress_bar(counts, total)
            done = final_count(counts) >= total
            if tty:
                self.stderr.write("\r" + line.ljust(len(last_line)), ending="")
            elif line != last_line:
                self.stderr.write(line)
            last_line = line
            if done or time.monotonic() >= deadline:
                break
            time.sleep(poll)
        if tty:
            self.stderr.write("")
        self.stderr.flush()
        return done

    def _summary(self, messages: QuerySet[SmsMessage], total: int) -> None:
        counts = status_counts(messages)
        order = [code for code, _ in status.STATUS_CHOICES]
        self.stdout.write(f"Summary ({total} message{'s' if total != 1 else ''}):")
        for code in [*order, *sorted(c for c in counts if c not in order)]:
            if counts.get(code):
                self.stdout.write(f"  {code:<12} {counts[code]:>7}")
