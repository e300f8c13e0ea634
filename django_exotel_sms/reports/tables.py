"""The report's tables as (header, rows), for the page's CSV links, the API and the command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import queries
from .queries import ReportFilter

Table = tuple[list[str], list[list[Any]]]


def _seconds(value: float | None) -> Any:
    return "" if value is None else round(value, 1)


def daily_table(report_filter: ReportFilter) -> Table:
    days = queries.daily(report_filter)
    present = queries.statuses_present(days)
    header = [
        "day",
        "messages",
        *present,
        "delivery_rate_pct",
        "ttf_p50_s",
        "ttf_p90_s",
        "ttf_p99_s",
    ]
    rows = [
        [
            row.day.isoformat(),
            row.total,
            *(row.counts.get(s, 0) for s in present),
            "" if row.delivery_rate is None else round(row.delivery_rate, 2),
            _seconds(row.ttf(50)),
            _seconds(row.ttf(90)),
            _seconds(row.ttf(99)),
        ]
        for row in days
    ]
    return header, rows


def failures_table(report_filter: ReportFilter) -> Table:
    header = [
        "detailed_status_code",
        "detailed_status",
        "status",
        "messages",
        "share_pct",
        "meaning",
    ]
    rows = [
        [
            "" if row.code is None else row.code,
            row.detailed_status,
            row.status,
            row.messages,
            round(row.share, 2),
            row.meaning,
        ]
        for row in queries.failures(report_filter, limit=1000)
    ]
    return header, rows


def _cost_table(by: str) -> Callable[[ReportFilter], Table]:
    def table(report_filter: ReportFilter) -> Table:
        header = [
            by,
            "label",
            "messages",
            "billed_messages",
            "sms_units",
            "price",
            "unbilled_predicted_units",
            "unbilled_estimated_price",
        ]
        rows = [
            [
                "" if row.key is None else str(row.key),
                row.label,
                row.messages,
                row.billed,
                row.units,
                row.price,
                row.unbilled_segments,
                "" if row.estimated_price is None else row.estimated_price,
            ]
            for row in queries.cost(report_filter, by)
        ]
        return header, rows

    return table


TABLES: dict[str, Callable[[ReportFilter], Table]] = {
    "daily": daily_table,
    "failures": failures_table,
    **{f"cost-by-{by}": _cost_table(by) for by in queries.COST_GROUPS},
}
