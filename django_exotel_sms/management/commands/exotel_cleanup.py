"""``manage.py exotel_cleanup --days N``: delete old messages that are final, in batches.

Only messages in a final status (sent, failed-dnd, failed, rejected) created more than N
days ago go, each slice of ids in its own short transaction with its status events and
clicks; batches left without messages and expired idempotency records go too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from ... import status
from ...conf import get_settings
from ...models import IdempotencyRecord, SmsBatch, SmsMessage


def old_final_messages(cutoff: Any) -> QuerySet[SmsMessage]:
    return SmsMessage.objects.filter(status__in=status.TERMINAL_STATUSES, created_at__lt=cutoff)


class Command(BaseCommand):
    help = "Delete messages in a final status older than --days, with their history."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, required=True, help="keep the last N days")
        parser.add_argument("--dry-run", action="store_true", help="only count what would go")
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="messages deleted per transaction"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days, size = options["days"], options["batch_size"]
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        if size < 1:
            raise CommandError("--batch-size must be at least 1.")
        now = timezone.now()
        cutoff = now - timedelta(days=days)
        expired = IdempotencyRecord.objects.filter(
            created_at__lt=now - timedelta(seconds=get_settings().idempotency_key_ttl)
        )
        if options["dry_run"]:
            self._dry_run(cutoff, expired, days)
            return

        deleted = events = clicks = slices = 0
        last_pk = 0
        while True:
            # Keyset pagination over ids: each DELETE touches at most `size` messages.
            ids = list(
                old_final_messages(cutoff)
                .filter(pk__gt=last_pk)
                .order_by("pk")
                .values_list("pk", flat=True)[:size]
            )
            if not ids:
                break
            last_pk = ids[-1]
            with transaction.atomic():
                _, per_model = SmsMessage.objects.filter(
                    pk__in=ids, status__in=status.TERMINAL_STATUSES
                ).delete()
            slices += 1
            deleted += per_model.get(SmsMessage._meta.label, 0)
            events += per_model.get("django_exotel_sms.StatusEvent", 0)
            clicks += per_model.get("django_exotel_sms.ClickEvent", 0)
            if options["verbosity"] >= 2:
                self.stdout.write(f"  slice {slices}: {deleted} messages deleted so far")
        empty = SmsBatch.objects.filter(created_at__lt=cutoff).exclude(
            Exists(SmsMessage.objects.filter(batch=OuterRef("pk")))
        )
        batches, _ = empty.delete()
        records, _ = expired.delete()
        self.stdout.write(
            f"Deleted {deleted} final messages older than {days} days "
            f"(with {events} status events and {clicks} clicks) in {slices} slice(s) of up to "
            f"{size}, {batches} empty batch(es) and {records} expired idempotency record(s)."
        )

    def _dry_run(self, cutoff: Any, expired: QuerySet[IdempotencyRecord], days: int) -> None:
        messages = old_final_messages(cutoff).count()
        # Batches every message of which would go (none left that is recent or not final).
        kept = SmsMessage.objects.filter(batch=OuterRef("pk")).exclude(
            status__in=status.TERMINAL_STATUSES, created_at__lt=cutoff
        )
        batches = SmsBatch.objects.filter(created_at__lt=cutoff).exclude(Exists(kept)).count()
        self.stdout.write(
            f"Dry run: would delete {messages} final messages older than {days} days, "
            f"{batches} batch(es) left empty and {expired.count()} expired idempotency "
            "record(s). Nothing was deleted."
        )
