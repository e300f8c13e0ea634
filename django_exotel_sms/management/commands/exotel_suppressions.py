"""``manage.py exotel_suppressions``: list, add, remove, import and export the suppression list.

Examples::

    manage.py exotel_suppressions list --reason opt_out
    manage.py exotel_suppressions add 09876543210 --reason opt_out --note "replied STOP"
    manage.py exotel_suppressions remove +919876543210 --scope promotional
    manage.py exotel_suppressions import opt-outs.csv     # columns: number[,reason,scope,...]
    manage.py exotel_suppressions export suppressions.csv # or "-" for standard output

Import and export show a progress bar on standard error. Numbers may be in any format
the app accepts; they are stored in E.164.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import phone, suppression, suppression_csv
from ...models import Suppression

BAR_WIDTH = 30
REASONS = [r for r, _ in Suppression.REASON_CHOICES]
SCOPES = [s for s, _ in Suppression.SCOPE_CHOICES]


def bar(done: int, total: int, what: str) -> str:
    filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {what}"


class Command(BaseCommand):
    help = "List, add, remove, import (CSV) and export (CSV) suppressed numbers."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="show suppressions, newest first")
        listing.add_argument("--number", help="one number, any format")
        listing.add_argument("--reason", choices=REASONS)
        listing.add_argument("--scope", choices=SCOPES)
        listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
        add = sub.add_parser("add", help="suppress a number")
        add.add_argument("number")
        add.add_argument("--reason", choices=REASONS, default=Suppression.REASON_MANUAL)
        add.add_argument("--scope", choices=SCOPES, default=Suppression.SCOPE_ALL)
        add.add_argument("--note", default="")
        remove = sub.add_parser("remove", help="send to a number again")
        remove.add_argument("number")
        remove.add_argument("--scope", choices=SCOPES, help="only this scope (default: all)")
        imp = sub.add_parser("import", help="add or update suppressions from a CSV file")
        imp.add_argument("file", type=Path)
        imp.add_argument("--source", default="import", help="recorded as the entries' source")
        exp = sub.add_parser("export", help="write every suppression to a CSV file")
        exp.add_argument("file", help="a path, or - for standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _progress(self, line: str, last: bool = False) -> None:
        if self.stderr.isatty():
            self.stderr.write("\r" + line, ending="\n" if last else "")
        else:
            self.stderr.write(line)
        self.stderr.flush()

    def _number(self, text: str) -> str:
        try:
            return suppression.normalize(text)
        except phone.InvalidNumber as exc:
            raise CommandError(str(exc)) from exc

    def _list(self, options: dict[str, Any]) -> None:
        qs = Suppression.objects.all()
        if options["number"]:
            qs = qs.filter(number=self._number(options["number"]))
        for name in ("reason", "scope"):
            if options[name]:
                qs = qs.filter(**{name: options[name]})
        shown = 0
        for entry in qs[: max(0, options["limit"])]:
            expiry = f" until {entry.expires_at:%Y-%m-%d %H:%M}" if entry.expires_at else ""
            note = f" - {entry.note}" if entry.note else ""
            self.stdout.write(
                f"{entry.number}  {entry.reason}  {entry.scope}  {entry.source or '-'}  "
                f"{entry.created_at:%Y-%m-%d %H:%M}{expiry}{note}"
            )
            shown += 1
        total = qs.count()
        self.stdout.write(f"{shown} of {total} suppression{'s' if total != 1 else ''} shown.")

    def _add(self, options: dict[str, Any]) -> None:
        entry = suppression.suppress(
            self._number(options["number"]),
            reason=options["reason"],
            scope=options["scope"],
            source="command",
            note=options["note"],
        )
        self.stdout.write(f"Suppressed {entry.number} ({entry.reason}, {entry.scope}).")

    def _remove(self, options: dict[str, Any]) -> None:
        removed = suppression.unsuppress(self._number(options["number"]), options["scope"])
        self.stdout.write(f"Removed {removed} suppression{'s' if removed != 1 else ''}.")

    def _import(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                total = max(0, sum(1 for _ in handle) - 1)
                handle.seek(0)
                result = suppression_csv.import_csv(
                    handle,
                    source=options["source"],
                    progress=lambda done: self._progress(bar(done, total, "lines"), done >= total),
                )
        except FileNotFoundError as exc:
            raise CommandError(f"No such file: {path}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path} is not UTF-8 text: {exc}.") from exc
        except csv.Error as exc:
            raise CommandError(f"{path} is not a readable CSV file: {exc}.") from exc
        self.stdout.write(f"Imported {result.imported}; skipped {result.invalid} invalid line(s).")
        for error in result.errors:
            self.stdout.write(f"  {error}")
        if result.invalid:
            more = result.invalid - len(result.errors)
            if more > 0:
                self.stdout.write(f"  ... and {more} more.")

    def _export(self, options: dict[str, Any]) -> None:
        qs = Suppression.objects.all()
        total = qs.count()
        to_stdout = options["file"] == "-"
        handle = None if to_stdout else Path(options["file"]).open("w", encoding="utf-8")  # noqa: SIM115
        rows = 0
        try:
            for index, line in enumerate(suppression_csv.export_lines(qs)):
                if handle is None:
                    self.stdout.write(line, ending="")
                else:
                    handle.write(line)
                rows = index  # the header line is not a row
                if rows and rows % 1000 == 0:
                    self._progress(bar(rows, total, "rows"))
            self._progress(bar(rows, total, "rows"), last=True)
        finally:
            if handle is not None:
                handle.close()
        if handle is not None:
            self.stdout.write(f"Exported {rows} suppression(s) to {options['file']}.")
