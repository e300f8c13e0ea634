"""The reports page and the CSV exports in the admin, under the "Reports" entry of the app.

Whoever may view messages may see reports and export; full numbers need
``django_exotel_sms.export_full_numbers``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

from ..admin.base import ModelAdmin
from ..models import SmsBatch, SmsMessage
from . import exports, page, rollup, tables
from .models import SmsReport
from .queries import FilterError, ReportFilter


def may_view_messages(request: HttpRequest) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (
            user.has_perm("django_exotel_sms.view_smsmessage")
            or user.has_perm("django_exotel_sms.change_smsmessage")
        )
    )


@admin.register(SmsReport)
class SmsReportAdmin(ModelAdmin):
    """Not a list of rows: its changelist is the reports page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may_view_messages(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(self.changelist_view), name=f"{prefix}_changelist"),
            path(
                "export/messages/",
                wrap(self.export_messages),
                name=f"{prefix}_export_messages",
            ),
            path(
                "export/batch/<int:batch_id>/",
                wrap(self.export_batch),
                name=f"{prefix}_export_batch",
            ),
            path(
                "export/table/<slug:table>/",
                wrap(self.export_table),
                name=f"{prefix}_export_table",
            ),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not may_view_messages(request):
            raise PermissionDenied

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._check(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "SMS reports",
            **page.context(request.GET),
            "refreshed": rollup.last_refresh(),
            "now": timezone.now(),
        }
        return TemplateResponse(request, "admin/django_exotel_sms/reports/report.html", context)

    def export_messages(self, request: HttpRequest) -> HttpResponseBase:
        """The message list as filtered and searched in its changelist (same query string)."""
        message_admin = self.admin_site._registry[SmsMessage]
        if not message_admin.has_view_or_change_permission(request):
            raise PermissionDenied
        try:
            changelist = message_admin.get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            return HttpResponse(f"Bad filter: {exc}", status=400, content_type="text/plain")
        messages = changelist.get_queryset(request)
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        return exports.stream_messages(
            messages,
            f"sms-messages-{stamp}.csv",
            full_numbers=exports.can_export_full_numbers(request.user),
        )

    def export_batch(self, request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
        self._check(request)
        if not SmsBatch.objects.filter(pk=batch_id).exists():
            raise Http404("No such batch.")
        messages = SmsMessage.objects.filter(batch_id=batch_id).order_by("pk")
        return exports.stream_messages(
            messages,
            f"sms-batch-{batch_id}.csv",
            full_numbers=exports.can_export_full_numbers(request.user),
            columns=exports.BATCH_COLUMNS,
        )

    def export_table(self, request: HttpRequest, table: str) -> HttpResponseBase:
        self._check(request)
        if table not in tables.TABLES:
            raise Http404("No such report table.")
        try:
            report_filter = ReportFilter.from_query(request.GET)
        except FilterError as exc:
            return HttpResponse(str(exc), status=400, content_type="text/plain")
        header, rows = tables.TABLES[table](report_filter)
        name = f"sms-report-{table}-{report_filter.start}-{report_filter.end}.csv"
        return exports.stream(name, header, rows)
