"""What the reports page shows, read from the roll-up (and, for "stuck now", live).

Every function takes a ``ReportFilter``; the same rows feed the page's tables, its charts
and the CSV exports of those tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from .. import status
from ..conf import get_settings
from ..models import SmsBatch, SmsMessage, SmsTemplate, StatusEvent
from .models import TTF_BOUNDS, DailyStat
from .rollup import TIMED_STATUSES, day_bounds

DEFAULT_DAYS = 14
MAX_DAYS = 400
TOP_FAILURES = 10
# Delivery rate: sent over messages Exotel finished with (or its API refused).
RATE_BASE = frozenset({status.SENT}) | status.FAILURE_STATUSES
# At Exotel, waiting for the final status a callback should bring.
AWAITING_CALLBACK = (status.QUEUED, status.SENDING, status.SUBMITTED)


class FilterError(ValueError):
    """A filter value that cannot be read; the page shows it instead of guessing."""


@dataclass(frozen=True)
class ReportFilter:
    start: dt.date
    end: dt.date  # inclusive
    account: str = ""
    sms_type: str = ""
    template: int | None = None
    sender: str = ""
    batch: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], today: dt.date | None = None) -> ReportFilter:
        today = today or timezone.localdate()
        end = _date(query.get("end"), "end") or today
        start = _date(query.get("start"), "start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise FilterError("The start date is after the end date.")
        if (end - start).days >= MAX_DAYS:
            raise FilterError(f"Choose at most {MAX_DAYS} days.")
        return cls(
            start=start,
            end=end,
            account=query.get("account", "").strip(),
            sms_type=query.get("sms_type", "").strip(),
            template=_int(query.get("template"), "template"),
            sender=query.get("sender", "").strip(),
            batch=_int(query.get("batch"), "batch"),
        )

    def as_query(self) -> dict[str, str]:
        """The filter as query parameters (for links and exports)."""
        query = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        for name in ("account", "sms_type", "template", "sender", "batch"):
            value = getattr(self, name)
            if value not in ("", None):
                query[name] = str(value)
        return query

    def dimensions(self) -> Q:
        """The filters other than the date range, for roll-up rows and messages alike."""
        condition = Q()
        if self.account:
            condition &= Q(account=self.account)
        if self.sms_type:
            condition &= Q(sms_type=self.sms_type)
        if self.template is not None:
            condition &= Q(template_id=self.template)
        if self.sender:
            condition &= Q(sender=self.sender)
        if self.batch is not None:
            condition &= Q(batch_id=self.batch)
        return condition

    def stats(self) -> QuerySet[DailyStat]:
        return DailyStat.objects.filter(self.dimensions(), day__gte=self.start, day__lte=self.end)

    def message_lookups(self) -> dict[str, str]:
        """The same filter as admin changelist lookups (for links to the message list)."""
        lookups = {
            "created_at__gte": day_bounds(self.start)[0].isoformat(),
            "created_at__lt": day_bounds(self.end)[1].isoformat(),
        }
        if self.account:
            lookups["account__exact"] = self.account
        if self.sms_type:
            lookups["sms_type__exact"] = self.sms_type
        if self.template is not None:
            lookups["template__id__exact"] = str(self.template)
        if self.sender:
            lookups["sender__exact"] = self.sender
        if self.batch is not None:
            lookups["batch__id__exact"] = str(self.batch)
        return lookups

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def _date(raw: str | None, name: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise FilterError(f"{name}: not a date (YYYY-MM-DD): {raw!r}.") from None


def _int(raw: str | None, name: str) -> int | None:
    if raw is None or not raw.strip():
        return None
    if not raw.strip().isdigit():
        raise FilterError(f"{name}: not an id: {raw!r}.")
    return int(raw)


# -- percentiles ------------------------------------------------------------------------


def percentile(histogram: list[int], p: float) -> float | None:
    """The p-th percentile (seconds) of a TTF histogram, interpolated within its bucket.

    Beyond the last bound the answer is that bound (a lower limit).
    """
    total = sum(histogram)
    if not total:
        return None
    rank = p / 100.0 * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(TTF_BOUNDS):
                return float(TTF_BOUNDS[-1])
            low = TTF_BOUNDS[index - 1] if index else 0
            high = TTF_BOUNDS[index]
            return low + (high - low) * max(0.0, rank - seen) / count
        seen += count
    return float(TTF_BOUNDS[-1])


def add_histograms(into: list[int], other: list[int]) -> None:
    if len(into) < len(other):
        into.extend([0] * (len(other) - len(into)))
    for i, n in enumerate(other):
        into[i] += n


# -- report sections --------------------------------------------------------------------


@dataclass
class DayRow:
    day: dt.date
    counts: dict[str, int] = field(default_factory=dict)
    histogram: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def delivered(self) -> int:
        return self.counts.get(status.SENT, 0)

    @property
    def rate_base(self) -> int:
        return sum(n for s, n in self.counts.items() if s in RATE_BASE)

    @property
    def delivery_rate(self) -> float | None:
        base = self.rate_base
        return 100.0 * self.delivered / base if base else None

    def ttf(self, p: float) -> float | None:
        return percentile(self.histogram, p)


def daily(report_filter: ReportFilter) -> list[DayRow]:
    """One row per day of the range (empty days included), counts by status."""
    rows = {day: DayRow(day) for day in report_filter.days}
    counts = report_filter.stats().values("day", "status").annotate(n=Sum("messages")).order_by()
    for row in counts:
        rows[row["day"]].counts[row["status"]] = row["n"]
    timed = (
        report_filter.stats().filter(status__in=TIMED_STATUSES).values_list("day", "ttf_histogram")
    )
    for day, histogram in timed:
        add_histograms(rows[day].histogram, histogram or [])
    return [rows[day] for day in report_filter.days]


HOURLY_MAX_DAYS = 2


def hourly(report_filter: ReportFilter) -> list[DayRow]:
    """Counts by hour and status for short ranges, live from the message table.

    The roll-up is daily; a range of at most ``HOURLY_MAX_DAYS`` days reads the messages
    themselves (a ``created_at`` index range), so it is current to the second.
    """
    start, end = day_bounds(report_filter.start)[0], day_bounds(report_filter.end)[1]
    hours: dict[dt.datetime, DayRow] = {}
    moment = start
    while moment < end:
        hours[moment] = DayRow(moment)
        moment = timezone.localtime(moment + dt.timedelta(hours=1))
    rows = (
        SmsMessage.objects.filter(
            report_filter.dimensions(), created_at__gte=start, created_at__lt=end
        )
        .annotate(hour=TruncHour("created_at"))
        .values("hour", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in rows:
        hour = timezone.localtime(row["hour"]) if timezone.is_aware(row["hour"]) else row["hour"]
        hours.setdefault(hour, DayRow(hour)).counts[row["status"]] = row["n"]
    return [hours[hour] for hour in sorted(hours)]


def totals(days: list[DayRow]) -> DayRow:
    total = DayRow(days[-1].day if days else timezone.localdate())
    for row in days:
        for key, n in row.counts.items():
            total.counts[key] = total.counts.get(key, 0) + n
        add_histograms(total.histogram, row.histogram)
    return total


def statuses_present(days: list[DayRow]) -> list[str]:
    """Statuses seen in the range, in the state machine's order."""
    seen = {s for row in days for s in row.counts}
    order = [value for value, _label in status.STATUS_CHOICES]
    return [s for s in order if s in seen] + sorted(seen - set(order))


@dataclass
class FailureRow:
    code: int | None
    detailed_status: str
    status: str
    messages: int
    share: float
    meaning: str


def failures(report_filter: ReportFilter, limit: int = TOP_FAILURES) -> list[FailureRow]:
    """Failures by detailed status code, most frequent first."""
    rows = (
        report_filter.stats()
        .filter(status__in=status.FAILURE_STATUSES)
        .values("detailed_status_code", "status")
        # One row per code: the text Exotel sent with it may vary (or be missing).
        .annotate(n=Sum("messages"), text=Max("detailed_status"))
        .order_by("-n", "detailed_status_code")
    )
    rows = list(rows)
    everything = report_filter.stats().aggregate(n=Sum("messages"))["n"] or 0
    found: list[FailureRow] = []
    for row in rows[:limit]:
        info = status.describe_code(row["detailed_status_code"])
        found.append(
            FailureRow(
                code=row["detailed_status_code"],
                detailed_status=row["text"] or (info.name if info else ""),
                status=row["status"],
                messages=row["n"],
                share=100.0 * row["n"] / everything if everything else 0.0,
                meaning=info.description if info else "",
            )
        )
    return found


@dataclass
class CostRow:
    key: Any
    label: str
    messages: int
    billed: int
    units: int
    price: Decimal
    unbilled_segments: int
    estimated_price: Decimal | None


COST_GROUPS = {"day": "day", "template": "template_id", "sender": "sender", "batch": "batch_id"}


def cost(report_filter: ReportFilter, by: str) -> list[CostRow]:
    """Units and price billed, and predicted units not yet billed, grouped by ``by``.

    The estimate prices unbilled units at the range's average price per billed unit.
    """
    column = COST_GROUPS[by]
    rows = list(
        report_filter.stats()
        .values(column)
        .annotate(
            n=Sum("messages"),
            billed_n=Sum("billed"),
            units_sum=Sum("units"),
            price_sum=Sum("price"),
            unbilled=Sum("unbilled_segments"),
        )
        .order_by(column if by == "day" else "-n")
    )
    units = sum(row["units_sum"] or 0 for row in rows)
    price = sum((row["price_sum"] or Decimal(0) for row in rows), Decimal(0))
    per_unit = price / units if units else None
    labels = _labels(by, [row[column] for row in rows])
    return [
        CostRow(
            key=row[column],
            label=labels.get(
                row[column], str(row[column]) if row[column] not in (None, "") else "(none)"
            ),
            messages=row["n"] or 0,
            billed=row["billed_n"] or 0,
            units=row["units_sum"] or 0,
            price=row["price_sum"] or Decimal(0),
            unbilled_segments=row["unbilled"] or 0,
            estimated_price=(
                (per_unit * (row["unbilled"] or 0)).quantize(Decimal("0.0001"))
                if per_unit is not None
                else None
            ),
        )
        for row in rows
    ]


def _labels(by: str, keys: list[Any]) -> dict[Any, str]:
    ids = [key for key in keys if key is not None]
    if by == "template":
        return {
            pk: name
            for pk, name in SmsTemplate.objects.filter(pk__in=ids).values_list("pk", "name")
        }
    if by == "batch":
        return {batch.pk: str(batch) for batch in SmsBatch.objects.filter(pk__in=ids)}
    if by == "day":
        return {key: key.isoformat() for key in ids}
    return {}


@dataclass
class Stuck:
    pending: int
    deferred: int
    submitting: int
    uncertain: int
    awaiting_callback: int
    callbacks_overdue: int
    oldest_pending: dt.datetime | None
    last_callback: dt.datetime | None
    now: dt.datetime

    @property
    def oldest_pending_age(self) -> float | None:
        if self.oldest_pending is None:
            return None
        return max(0.0, (self.now - self.oldest_pending).total_seconds())

    @property
    def minutes_since_last_callback(self) -> float | None:
        if self.last_callback is None:
            return None
        return max(0.0, (self.now - self.last_callback).total_seconds() / 60.0)


def stuck(dimensions: Q | None = None, now: dt.datetime | None = None) -> Stuck:
    """What is waiting right now, live from the message table (indexed by status).

    Deferred: pending with a "not before" in the future (retry backoff, schedule, window).
    Callbacks overdue: at Exotel, without news for longer than ``RECONCILE_AFTER``.
    """
    now = now or timezone.now()
    messages = SmsMessage.objects.filter(dimensions or Q())
    pending = messages.filter(status=status.PENDING)
    overdue_before = now - dt.timedelta(seconds=get_settings().reconcile_after)
    counts = messages.filter(
        status__in=(status.PENDING, status.SUBMITTING, status.UNCERTAIN, *AWAITING_CALLBACK)
    ).aggregate(
        pending=_count(Q(status=status.PENDING)),
        deferred=_count(Q(status=status.PENDING, next_attempt_at__gt=now)),
        submitting=_count(Q(status=status.SUBMITTING)),
        uncertain=_count(Q(status=status.UNCERTAIN)),
        awaiting=_count(Q(status__in=AWAITING_CALLBACK)),
        overdue=_count(Q(status__in=AWAITING_CALLBACK, updated_at__lt=overdue_before)),
    )
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    return Stuck(
        pending=counts["pending"],
        deferred=counts["deferred"],
        submitting=counts["submitting"],
        uncertain=counts["uncertain"],
        awaiting_callback=counts["awaiting"],
        callbacks_overdue=counts["overdue"],
        oldest_pending=oldest,
        last_callback=last_callback(),
        now=now,
    )


def _count(condition: Q) -> Any:
    return Count("pk", filter=condition)


def last_callback() -> dt.datetime | None:
    """When the newest callback event was recorded (walks the pk index from the end)."""
    return (
        StatusEvent.objects.filter(source=StatusEvent.SOURCE_CALLBACK)
        .order_by("-pk")
        .values_list("created_at", flat=True)
        .first()
    )


def choices(report_filter: ReportFilter) -> dict[str, list[tuple[str, str]]]:
    """Filter choices from small tables and the range's roll-up rows (never the messages).

    The chosen account and sender stay listed even when the range has none of them.
    """
    from ..models import SMS_TYPE_CHOICES

    in_range = DailyStat.objects.filter(day__gte=report_filter.start, day__lte=report_filter.end)
    accounts = sorted(
        set(get_settings().accounts)
        | set(in_range.values_list("account", flat=True).distinct().order_by())
        | ({report_filter.account} if report_filter.account else set())
    )
    senders = sorted(
        {s for s in in_range.values_list("sender", flat=True).distinct().order_by() if s}
        | ({report_filter.sender} if report_filter.sender else set())
    )
    return {
        "account": [(a, a) for a in accounts],
        "sms_type": [(value, str(label)) for value, label in SMS_TYPE_CHOICES],
        "template": [
            (str(pk), name)
            for pk, name in SmsTemplate.objects.order_by("name").values_list("pk", "name")[:500]
        ],
        "sender": [(s, s) for s in senders],
    }
