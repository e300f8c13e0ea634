"""Keeps ``DailyStat`` true: each refresh rebuilds, per day, the rows of days touched since.

A day's rows are recomputed from the message table in one GROUP BY (set-based), never
incremented, so the roll-up equals a full recount whatever order or how many times
callbacks arrived. The lag is the refresh interval (the ``rollup`` beat task) plus a run.

Which days: those of messages whose ``updated_at`` moved since the previous run started,
less ``OVERLAP`` for transactions that stamped ``updated_at`` before committing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .. import status
from ..models import SmsMessage
from .models import TTF_BOUNDS, DailyStat, RollupCursor

CURSOR = "daily"
OVERLAP = dt.timedelta(minutes=5)
KEYS = (
    "account",
    "sms_type",
    "template_id",
    "sender",
    "batch_id",
    "status",
    "detailed_status_code",
    "detailed_status",
)
_ALL_STATUSES = [value for value, _label in status.STATUS_CHOICES]
# Final at Exotel: the time from our submission to the DateSent Exotel reports.
TIMED_STATUSES = (status.SENT, status.FAILED, status.FAILED_DND)
# Never billed: kept from Exotel on purpose, or refused by its API.
UNBILLABLE = status.NOT_SENT_STATUSES | {status.REJECTED}


@dataclass
class RefreshReport:
    days: list[dt.date] = field(default_factory=list)
    rows: int = 0


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Midnight to midnight in the current time zone (the one ``TruncDate`` uses)."""
    start = dt.datetime.combine(day, dt.time.min)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)
    if timezone.is_naive(timezone.now()):
        return start, end
    return timezone.make_aware(start), timezone.make_aware(end)


def _bucket(index: int) -> Q:
    timed = Q(status__in=TIMED_STATUSES, submitted_at__isnull=False, sent_at__isnull=False)
    if index < len(TTF_BOUNDS):
        timed &= Q(sent_at__lt=_after(TTF_BOUNDS[index]))
    if index > 0:
        timed &= Q(sent_at__gte=_after(TTF_BOUNDS[index - 1]))
    return timed


def _after(seconds: int) -> object:
    return F("submitted_at") + dt.timedelta(seconds=seconds)


def aggregate(messages: QuerySet[SmsMessage]) -> QuerySet[SmsMessage, dict[str, Any]]:
    """One row per roll-up key of ``messages``, with the DailyStat measures."""
    buckets = {f"h{i}": Count("pk", filter=_bucket(i)) for i in range(len(TTF_BOUNDS) + 1)}
    return (
        messages.values(*KEYS)
        .annotate(
            n=Count("pk"),
            seg=Sum("segments"),
            billed_n=Count("pk", filter=Q(sms_units__isnull=False)),
            units_sum=Sum("sms_units"),
            price_sum=Sum("price"),
            unbilled=Sum("segments", filter=Q(sms_units__isnull=True) & ~Q(status__in=UNBILLABLE)),
            **buckets,
        )
        .order_by()
    )


def recount(day: dt.date) -> list[DailyStat]:
    """The day's roll-up rows, computed from the message table (not saved)."""
    start, end = day_bounds(day)
    rows: Iterable[dict[str, Any]] = aggregate(
        SmsMessage.objects.filter(created_at__gte=start, created_at__lt=end)
    )
    return [
        DailyStat(
            day=day,
            **{key: row[key] for key in KEYS},
            messages=row["n"],
            segments=row["seg"] or 0,
            billed=row["billed_n"],
            units=row["units_sum"] or 0,
            price=row["price_sum"] or 0,
            unbilled_segments=row["unbilled"] or 0,
            ttf_histogram=[row[f"h{i}"] for i in range(len(TTF_BOUNDS) + 1)],
        )
        for row in rows
    ]


def rebuild_days(days: Iterable[dt.date]) -> RefreshReport:
    """Replace the roll-up rows of ``days``, each day in its own short transaction."""
    report = RefreshReport()
    for day in sorted(set(days)):
        with transaction.atomic():
            # Serialises refreshes: two runs must not interleave one day's delete and insert.
            RollupCursor.objects.select_for_update().filter(name=CURSOR).first()
            DailyStat.objects.filter(day=day).delete()
            rows = DailyStat.objects.bulk_create(recount(day), batch_size=500)
        report.days.append(day)
        report.rows += len(rows)
    return report


def touched_days(since: dt.datetime | None) -> list[dt.date]:
    """Days (of ``created_at``) of messages changed since ``since``; every day when None."""
    messages = SmsMessage.objects.all()
    if since is not None:
        # status__in lets the (status, updated_at) index answer.
        messages = messages.filter(status__in=_ALL_STATUSES, updated_at__gte=since)
    days = (
        messages.annotate(day=TruncDate("created_at"))
        .values_list("day", flat=True)
        .distinct()
        .order_by()
    )
    return [day for day in days if day is not None]


def refresh(*, full: bool = False, now: dt.datetime | None = None) -> RefreshReport:
    """Bring the roll-up up to date; ``full`` rebuilds every day (and drops stale days)."""
    started = now or timezone.now()
    cursor, _created = RollupCursor.objects.get_or_create(name=CURSOR)
    if full or cursor.started_at is None:
        days = touched_days(None)
        # Days whose messages are all gone (e.g. a manual delete) lose their rows too.
        stale = set(DailyStat.objects.values_list("day", flat=True).distinct()) - set(days)
        DailyStat.objects.filter(day__in=stale).delete()
    else:
        days = touched_days(cursor.started_at - OVERLAP)
    report = rebuild_days(days)
    RollupCursor.objects.filter(name=CURSOR).update(started_at=started, finished_at=timezone.now())
    return report


def last_refresh() -> RollupCursor | None:
    return RollupCursor.objects.filter(name=CURSOR).first()
