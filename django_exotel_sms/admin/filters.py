"""Changelist filters that stay cheap on millions of messages.

None of them runs a DISTINCT over the message table: choices come from the status
table in code, from the (small) template table, or only from the value already chosen.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import status
from ..models import SmsBatch, SmsTemplate
from ..querystring import MAX_CODE, MAX_ID, whole_number

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

    Lookups = list[tuple[Any, _StrOrPromise]]
else:
    Lookups = list


def _int_value(value: str, low: int = 1, high: int = MAX_ID) -> int:
    number = whole_number(value, low, high)
    if number is None:
        raise IncorrectLookupParameters(f"{value!r} is not a number in range.")
    return number


class DetailedStatusFilter(admin.SimpleListFilter):
    """Exotel's documented detailed codes, plus codes it reported that we do not know."""

    title = _("detailed status")
    parameter_name = "detailed_status_code"
    UNKNOWN = "unknown"
    NONE = "none"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Lookups:
        choices: Lookups = [
            (str(code), f"{code} {info.name}")
            for code, info in sorted(status.DETAILED_STATUSES.items())
        ]
        choices.append((self.UNKNOWN, _("Unknown code")))
        choices.append((self.NONE, _("No code yet")))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value == self.UNKNOWN:
            return queryset.filter(detailed_status_code__isnull=False).exclude(
                detailed_status_code__in=list(status.DETAILED_STATUSES)
            )
        if value == self.NONE:
            return queryset.filter(detailed_status_code__isnull=True)
        # Any code is accepted, so a link for a code newer than our table still works.
        return queryset.filter(detailed_status_code=_int_value(value, -MAX_CODE - 1, MAX_CODE))


class CreatedFilter(admin.SimpleListFilter):
    """A few recent windows over the created_at index (date_hierarchy would scan for dates)."""

    title = _("created")
    parameter_name = "created"
    WINDOWS = {"today": 0, "7d": 7, "30d": 30}

    def lookups(self, request: HttpRequest, model_admin: Any) -> Lookups:
        return [("today", _("Today")), ("7d", _("Past 7 days")), ("30d", _("Past 30 days"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        if value not in self.WINDOWS:
            raise IncorrectLookupParameters(f"Unknown window {value!r}.")
        midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
        return queryset.filter(created_at__gte=midnight - timedelta(days=self.WINDOWS[value]))


class TemplateFilter(admin.SimpleListFilter):
    """Choices from the template table (a RelatedOnly filter would DISTINCT the messages)."""

    title = _("template")
    parameter_name = "template__id__exact"
    MAX_CHOICES = 200

    def lookups(self, request: HttpRequest, model_admin: Any) -> Lookups:
        rows = SmsTemplate.objects.order_by("name").values_list("pk", "name")
        return [(str(pk), name) for pk, name in rows[: self.MAX_CHOICES]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(template_id=_int_value(value))


class BatchFilter(admin.SimpleListFilter):
    """Filters by ``?batch__id__exact=``; lists only the chosen batch, never all of them.

    Batches are reached from their page or from the batch column's links.
    """

    title = _("batch")
    parameter_name = "batch__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Lookups:
        value = self.value()
        if value is None:
            return []  # no sidebar entry until a batch is chosen
        pk = whole_number(value, 1, MAX_ID)
        batch = SmsBatch.objects.filter(pk=pk).first() if pk is not None else None
        return [(value, str(batch) if batch else _("Batch %(id)s") % {"id": value})]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(batch_id=_int_value(value))
