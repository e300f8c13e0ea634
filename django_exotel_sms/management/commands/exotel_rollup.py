"""``manage.py exotel_rollup [--full]``: bring the reports' daily roll-up up to date now.

The ``django_exotel_sms.tasks.rollup`` beat task does the same on a schedule.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...reports import rollup


class Command(BaseCommand):
    help = "Rebuild the reports' daily roll-up for days whose messages changed (or all days)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full", action="store_true", help="rebuild every day from the message table"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = rollup.refresh(full=options["full"])
        days = ", ".join(day.isoformat() for day in report.days) or "none"
        self.stdout.write(f"Rebuilt {len(report.days)} day(s) ({report.rows} rows): {days}")
