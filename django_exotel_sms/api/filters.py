"""Query-string filters for the message list, written by hand (no django-filter dependency).

Every filter maps onto an indexed column. A value that cannot be read is a 400 naming
the parameter, never an empty list that looks like "no such messages".
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from .. import phone, status
from ..conf import get_settings
from ..querystring import MAX_CODE, MAX_ID, NUL, whole_number

__all__ = ["MessageFilter", "parse_timestamp"]

_KNOWN_STATUSES = [value for value, _label in status.STATUS_CHOICES]
# "2024-05-01T10:00:00+05:30" sent unencoded in a URL arrives with the "+" as a space.
_SPACED_OFFSET = re.compile(r"^(.*\d) (\d{2}:?\d{2})$")
_RANGE = (("created_after", "created_at__gte"), ("created_before", "created_at__lt"))


def _values(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def parse_timestamp(raw: str) -> dt.datetime | None:
    """An ISO 8601 date or date-time; naive values are in the current time zone."""
    value = raw.strip()
    spaced = _SPACED_OFFSET.match(value)
    if spaced and "T" in value:
        value = f"{spaced.group(1)}+{spaced.group(2)}"
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                return None
            moment = dt.datetime.combine(day, dt.time.min)
        if settings.USE_TZ and timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        if timezone.is_aware(moment):
            # Databases compare in UTC; 9999-12-31T23:59-05:00 has no UTC datetime.
            moment.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # well formed but impossible, e.g. month 13
        return None
    return moment


class MessageFilter(BaseFilterBackend):
    """``?status=sent,failed&to=09876543210&created_after=2024-05-01`` and friends."""

    params: dict[str, tuple[str, str]] = {
        "status": ("string", "Status, or several separated by commas (e.g. `sent,failed`)."),
        "detailed_status_code": (
            "string",
            "Exotel's detailed status code, or several separated by commas.",
        ),
        "to": ("string", "Recipient; national forms are read in EXOTEL_SMS['DEFAULT_REGION']."),
        "batch": ("integer", "Batch id."),
        "template": ("string", "Template id or name."),
        "custom_field": ("string", "The custom field given when sending (exact)."),
        "created_after": ("string", "ISO 8601 date or date-time; created at or after it."),
        "created_before": ("string", "ISO 8601 date or date-time; created before it."),
    }

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        if getattr(view, "action", None) != "list":
            return queryset
        query = request.query_params
        errors: dict[str, list[str]] = {
            # No column can hold a NUL, and PostgreSQL refuses one even in a comparison.
            name: ["Must not contain a NUL character (\\x00)."]
            for name in self.params
            if NUL in query.get(name, "")
        }
        if errors:
            raise ValidationError(errors)
        conditions = Q()

        if raw := query.get("status"):
            wanted = _values(raw)
            unknown = [s for s in wanted if s not in _KNOWN_STATUSES]
            if unknown:
                errors["status"] = [
                    f"Unknown status {', '.join(map(repr, unknown))}; known statuses are "
                    f"{', '.join(_KNOWN_STATUSES)}."
                ]
            else:
                conditions &= Q(status__in=wanted)

        if raw := query.get("detailed_status_code"):
            codes = [whole_number(code, -MAX_CODE - 1, MAX_CODE) for code in _values(raw)]
            if None in codes:
                errors["detailed_status_code"] = [
                    f"Detailed status codes are whole numbers; got {raw!r}."
                ]
            else:
                conditions &= Q(detailed_status_code__in=codes)

        if raw := query.get("to"):
            try:
                conditions &= Q(to=phone.normalize(raw, get_settings().default_region))
            except phone.InvalidNumber as exc:
                errors["to"] = [str(exc)]

        if raw := query.get("batch"):
            if (batch := whole_number(raw, 1, MAX_ID)) is not None:
                conditions &= Q(batch_id=batch)
            else:
                errors["batch"] = [f"A batch id is a whole number; got {raw!r}."]

        if raw := query.get("template"):
            # Digits of any script mean an id; ids are ASCII digits within the column.
            if not raw.isdigit():
                conditions &= Q(template__name=raw)
            elif (template := whole_number(raw, 1, MAX_ID)) is None:
                errors["template"] = [f"No template can have the id {raw!r}."]
            else:
                conditions &= Q(template_id=template)

        if "custom_field" in query:
            conditions &= Q(custom_field=query["custom_field"])

        for name, lookup in _RANGE:
            if raw := query.get(name):
                moment = parse_timestamp(raw)
                if moment is None:
                    errors[name] = [
                        f"Not an ISO 8601 date or date-time: {raw!r} "
                        "(e.g. 2024-05-01 or 2024-05-01T10:00:00Z)."
                    ]
                else:
                    conditions &= Q(**{lookup: moment})

        if errors:
            raise ValidationError(errors)
        return queryset.filter(conditions)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "required": False,
                "in": "query",
                "description": description,
                "schema": {"type": kind},
            }
            for name, (kind, description) in self.params.items()
        ]
