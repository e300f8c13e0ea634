"""The reports page's context: filter form, sections, their charts and links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from .. import status
from . import charts, queries
from .queries import FilterError, ReportFilter


def _changelist(lookups: Mapping[str, str]) -> str:
    return reverse("admin:django_exotel_sms_smsmessage_changelist") + "?" + urlencode(lookups)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def context(query: Mapping[str, str]) -> dict[str, Any]:
    try:
        report_filter = ReportFilter.from_query(query)
        error = ""
    except FilterError as exc:
        report_filter = ReportFilter.from_query({})
        error = str(exc)
    days = queries.daily(report_filter)
    total = queries.totals(days)
    present = queries.statuses_present(days)
    labels = [day.day.strftime("%d %b") for day in days]
    by_hour = (report_filter.end - report_filter.start).days < queries.HOURLY_MAX_DAYS
    volume = queries.hourly(report_filter) if by_hour else days
    volume_labels = (
        [row.day.strftime("%H:00" if len(volume) <= 24 else "%d %H:00") for row in volume]
        if by_hour
        else labels
    )
    volume_statuses = queries.statuses_present(volume)
    failures = queries.failures(report_filter)
    lookups = report_filter.message_lookups()
    stuck = queries.stuck(report_filter.dimensions())
    cost = {by: queries.cost(report_filter, by) for by in queries.COST_GROUPS}
    export_query = urlencode(report_filter.as_query())
    return {
        "filter": report_filter,
        "filter_error": error,
        "choices": queries.choices(report_filter),
        "query": report_filter.as_query(),
        "export_query": export_query,
        "days": days,
        "total": total,
        "status_rows": [
            {
                "status": s,
                "colour": charts.colour(s),
                "messages": total.counts.get(s, 0),
                "url": _changelist({**lookups, "status__exact": s}),
            }
            for s in present
        ],
        "not_sent": sum(total.counts.get(s, 0) for s in status.NOT_SENT_STATUSES),
        "by_hour": by_hour,
        "volume_statuses": [(s, charts.colour(s)) for s in volume_statuses],
        "volume_chart": charts.stacked_bars(
            volume_labels,
            [
                charts.Series(s, [d.counts.get(s, 0) for d in volume], charts.colour(s))
                for s in volume_statuses
            ],
            line=charts.Series("delivery rate %", [d.delivery_rate for d in volume], "#1a202c"),
            title="Messages by status, and the delivery rate",
        ),
        "ttf_chart": charts.lines(
            labels,
            [
                charts.Series(f"p{p}", [d.ttf(p) for d in days], colour)
                for p, colour in zip((50, 90, 99), charts.LINE_COLOURS[:3], strict=True)
            ],
            unit=" s",
            title="Time to final status per day (p50, p90, p99)",
            width=charts.HALF_WIDTH,
        ),
        "ttf": {p: _duration(total.ttf(p)) for p in (50, 90, 99)},
        "ttf_rows": [
            {"day": d, **{f"p{p}": _duration(d.ttf(p)) for p in (50, 90, 99)}} for d in days
        ],
        "failures": [
            {
                "row": row,
                "url": _changelist(
                    {
                        **lookups,
                        "status__exact": row.status,
                        "detailed_status_code": "none" if row.code is None else str(row.code),
                    }
                ),
            }
            for row in failures
        ],
        "failures_chart": charts.horizontal_bars(
            [(f"{row.code or '-'} {row.detailed_status}", row.messages) for row in failures],
            title="Failures by detailed status code",
            fill=charts.colour(status.FAILED),
            width=charts.HALF_WIDTH,
        ),
        "cost": cost,
        "cost_chart": charts.stacked_bars(
            labels,
            [
                charts.Series("billed units", _by_day(cost["day"], days, "units"), "#2b6cb0"),
                charts.Series(
                    "predicted unbilled units",
                    _by_day(cost["day"], days, "unbilled_segments"),
                    "#90cdf4",
                ),
            ],
            title="SMS units per day: billed, and predicted for messages not billed yet",
        ),
        "cost_totals": _cost_totals(cost["day"]),
        "stuck": stuck,
        "oldest_pending_age": _duration(stuck.oldest_pending_age),
        "stuck_links": {
            "pending": _changelist({"status__exact": status.PENDING}),
            "uncertain": _changelist({"status__exact": status.UNCERTAIN}),
        },
        "table_names": ["daily", "failures", *(f"cost-by-{by}" for by in queries.COST_GROUPS)],
    }


def _by_day(rows: list[queries.CostRow], days: list[queries.DayRow], attribute: str) -> list[float]:
    found = {row.key: float(getattr(row, attribute)) for row in rows}
    return [found.get(day.day, 0.0) for day in days]


def _cost_totals(rows: list[queries.CostRow]) -> dict[str, Any]:
    estimated = [row.estimated_price for row in rows if row.estimated_price is not None]
    return {
        "messages": sum(row.messages for row in rows),
        "billed": sum(row.billed for row in rows),
        "units": sum(row.units for row in rows),
        "price": sum((row.price for row in rows), start=0),
        "unbilled_segments": sum(row.unbilled_segments for row in rows),
        "estimated_price": sum(estimated, start=0) if estimated else None,
    }
