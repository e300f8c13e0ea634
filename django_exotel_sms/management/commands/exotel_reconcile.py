"""``manage.py exotel_reconcile``: what the periodic ``reconcile`` task does, now.

Recovers stale claims, asks Exotel about messages whose callback never came, expires
pending messages past their expiry, and resumes pending work that is due (a lost task,
or a scheduled / window-deferred message whose time came): enqueued on Celery, or with
``--sync`` sent right here.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import reconcile, sending, tasks


class Command(BaseCommand):
    help = "Reconcile now: recover stale claims, refresh open messages, resume lost sends."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=None, help="at most this many details calls to Exotel"
        )
        parser.add_argument(
            "--sync",
            action="store_true",
            help="send resumed messages in this process instead of enqueueing them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        report = reconcile.run(limit)
        batches = sorted(report.batches_to_resume)
        singles = sorted(report.messages_to_resume)
        how = "sent in this process" if options["sync"] else "enqueued"
        if options["sync"]:
            for batch_id in batches:
                sending.run_until_done(partial(sending.deliver_batch, batch_id))
            for message_id in singles:
                sending.run_until_done(partial(sending.deliver_message, message_id))
        else:
            try:
                for batch_id in batches:
                    tasks.send_batch.apply_async((batch_id,), **tasks._options())
                for message_id in singles:
                    tasks.send_message.apply_async((message_id,), **tasks._options())
            except Exception as exc:
                raise CommandError(
                    f"Could not enqueue the resumed work ({exc.__class__.__name__}: {exc}); "
                    "is the Celery broker up? --sync sends it from here instead."
                ) from exc
        rows = [
            ("Stale claims sent again (never reached Exotel)", report.reclaimed_pending),
            ("Stale claims marked uncertain", report.marked_uncertain),
            ("Messages checked with Exotel", report.checked),
            ("Messages moved forward", report.updated),
            ("Not found at Exotel", report.not_found),
            ("Errors", report.errors),
            ("Expired before sending", report.expired),
            ("Scheduled or deferred work now due", report.released),
            (f"Batches resumed ({how})", len(batches)),
            (f"Single messages resumed ({how})", len(singles)),
        ]
        self.stdout.write("Reconciliation report:")
        for label, value in rows:
            self.stdout.write(f"  {label + ':':<50} {value}")
