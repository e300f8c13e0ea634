"""``manage.py exotel_export messages|batch|report``: CSV to a file or stdout, with progress.

Examples::

    manage.py exotel_export messages --status failed --created-after 2024-05-01 -o failed.csv
    manage.py exotel_export batch 42 -o batch-42.csv
    manage.py exotel_export report cost-by-template --start 2024-05-01 --end 2024-05-31

Numbers are masked unless ``--full-numbers`` is given. Rows are read in chunks, so memory
stays flat whatever the size; progress goes to stderr.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from ... import status
from ...api.filters import parse_timestamp
from ...models import SmsMessage
from ...reports import exports, tables
from ...reports.queries import FilterError, ReportFilter


class Command(BaseCommand):
    help = "Export messages, a batch's outcomes or a report table as CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("what", choices=["messages", "batch", "report"])
        parser.add_argument("target", nargs="?", help="batch id, or report table name")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")
        parser.add_argument("--full-numbers", action="store_true", help="do not mask numbers")
        parser.add_argument("--status", help="messages: statuses, comma separated")
        parser.add_argument("--created-after", help="messages: ISO date or date-time")
        parser.add_argument("--created-before", help="messages: ISO date or date-time")
        parser.add_argument("--account", default="", help="messages and reports: account alias")
        for name in ("start", "end", "sms-type", "template", "sender", "batch"):
            parser.add_argument(f"--{name}", help="report: the reports page's filter")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        what = options["what"]
        if what == "report":
            header, rows = self._report(options)
            total: int | None = len(rows)
            data: Any = rows
        else:
            messages, columns = self._messages(what, options)
            header = list(columns)
            total = messages.count()
            data = None
        progress = _Progress(total, quiet=options["no_progress"] or not options["output"])
        if data is None:
            data = exports.message_rows(
                messages, columns, full_numbers=options["full_numbers"], on_chunk=progress.update
            )
        with contextlib.ExitStack() as stack:
            out: IO[str] = sys.stdout
            if options["output"]:
                out = stack.enter_context(
                    open(options["output"], "w", newline="", encoding="utf-8")
                )
            for line in exports.csv_lines(header, data):
                out.write(line)
        progress.finish()

    def _messages(self, what: str, options: dict[str, Any]) -> tuple[Any, tuple[str, ...]]:
        if what == "batch":
            target = options["target"] or ""
            if not target.isdigit():
                raise CommandError("Give the batch id: exotel_export batch 42")
            return SmsMessage.objects.filter(batch_id=int(target)).order_by(
                "pk"
            ), exports.BATCH_COLUMNS
        condition = Q()
        if options["status"]:
            wanted = [s.strip() for s in options["status"].split(",") if s.strip()]
            known = {value for value, _label in status.STATUS_CHOICES}
            if set(wanted) - known:
                raise CommandError(f"Unknown status in {options['status']!r}.")
            condition &= Q(status__in=wanted)
        for name, lookup in (
            ("created_after", "created_at__gte"),
            ("created_before", "created_at__lt"),
        ):
            if options[name]:
                moment = parse_timestamp(options[name])
                if moment is None:
                    raise CommandError(
                        f"--{name.replace('_', '-')}: not an ISO date: {options[name]!r}"
                    )
                condition &= Q(**{lookup: moment})
        if options["account"]:
            condition &= Q(account=options["account"])
        return SmsMessage.objects.filter(condition).order_by("pk"), exports.MESSAGE_COLUMNS

    def _report(self, options: dict[str, Any]) -> tables.Table:
        table = options["target"]
        if table not in tables.TABLES:
            raise CommandError(f"Give a report table: {', '.join(tables.TABLES)}")
        query = {
            key: options[key.replace("-", "_")] or ""
            for key in ("start", "end", "account", "sms-type", "template", "sender", "batch")
        }
        query["sms_type"] = query.pop("sms-type")
        try:
            return tables.TABLES[table](ReportFilter.from_query(query))
        except FilterError as exc:
            raise CommandError(str(exc)) from None


class _Progress:
    """``\\r  120000/1000000 rows (12%)`` on stderr, at most a few times a second."""

    def __init__(self, total: int | None, *, quiet: bool) -> None:
        self.total, self.quiet, self.done, self.shown = total, quiet, 0, 0.0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.quiet or now - self.shown < 0.2:
            return
        self.shown = now
        share = f" ({100 * done // self.total}%)" if self.total else ""
        sys.stderr.write(f"\r{done}/{self.total} rows{share}")
        sys.stderr.flush()

    def finish(self) -> None:
        if not self.quiet:
            sys.stderr.write(f"\r{self.done}/{self.total} rows (done)\n")
