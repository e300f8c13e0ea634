"""CSV exports over the REST API: ``exports/messages/``, ``exports/batches/<id>/``,
``exports/reports/<table>/``; the same filters as the message list and the reports page.

Reading needs the view permission on messages (or the configured API permissions);
full numbers need ``django_exotel_sms.export_full_numbers``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import Http404, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from ..api import permissions
from ..api.filters import MessageFilter
from ..api.schema import HAS_SPECTACULAR, extend_schema
from ..models import SmsBatch, SmsMessage
from . import exports, tables
from .queries import FilterError, ReportFilter


def _csv(description: str, *parameters: tuple[str, str]) -> dict[str, Any]:
    """extend_schema arguments: a CSV body, and the query parameters named."""
    if not HAS_SPECTACULAR:
        return {}
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

    return {
        "description": description,
        "parameters": [
            OpenApiParameter(name, str, OpenApiParameter.QUERY, description=text)
            for name, text in parameters
        ],
        "responses": {(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
    }


_REPORT_PARAMETERS = (
    ("start", "First day, YYYY-MM-DD (default: 13 days before the end)."),
    ("end", "Last day, YYYY-MM-DD (default: today)."),
    ("account", "Account alias."),
    ("sms_type", "SMS type."),
    ("template", "Template id."),
    ("sender", "Sender ID."),
    ("batch", "Batch id."),
)


class ExportViewSet(viewsets.GenericViewSet):  # type: ignore[type-arg]
    queryset = SmsMessage.objects.all()  # for the model permissions

    def get_permissions(self) -> list[BasePermission]:
        return [cls() for cls in permissions.permission_classes()]

    def _full(self, request: Request) -> bool:
        return exports.can_export_full_numbers(request.user)

    @extend_schema(
        **_csv(
            "Messages as CSV, filtered as the message list is.",
            *((name, text) for name, (_kind, text) in MessageFilter.params.items()),
        )
    )
    @action(detail=False, methods=["get"], url_path="messages")
    def messages(self, request: Request) -> StreamingHttpResponse:
        """Messages, filtered as ``GET messages/`` is (status, to, batch, template, dates...)."""
        listing = SimpleNamespace(action="list")
        found = MessageFilter().filter_queryset(request, SmsMessage.objects.all(), listing)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return exports.stream_messages(
            found.order_by("pk"), f"sms-messages-{stamp}.csv", full_numbers=self._full(request)
        )

    @extend_schema(**_csv("A batch's per-recipient outcome as CSV."))
    @action(detail=False, methods=["get"], url_path=r"batches/(?P<batch_id>[0-9]+)")
    def batch(self, request: Request, batch_id: str) -> StreamingHttpResponse:
        """One batch's per-recipient outcome."""
        if not SmsBatch.objects.filter(pk=int(batch_id)).exists():
            raise Http404("No such batch.")
        return exports.stream_messages(
            SmsMessage.objects.filter(batch_id=int(batch_id)).order_by("pk"),
            f"sms-batch-{batch_id}.csv",
            full_numbers=self._full(request),
            columns=exports.BATCH_COLUMNS,
        )

    @extend_schema(**_csv("A report table as CSV.", *_REPORT_PARAMETERS))
    @action(detail=False, methods=["get"], url_path=r"reports/(?P<table>[a-z-]+)")
    def report(self, request: Request, table: str) -> HttpResponseBase:
        """A report table (daily, failures, cost-by-day/template/sender/batch) as CSV."""
        if table not in tables.TABLES:
            raise Http404(f"No such report table; tables: {', '.join(tables.TABLES)}.")
        try:
            report_filter = ReportFilter.from_query(request.query_params)
        except FilterError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        header, rows = tables.TABLES[table](report_filter)
        return exports.stream(
            f"sms-report-{table}-{report_filter.start}-{report_filter.end}.csv", header, rows
        )
