"""The message list operations people live in: built for millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from .. import phone, status
from ..conf import get_settings
from ..models import ClickEvent, SmsMessage, StatusEvent
from . import actions
from .base import ReadOnlyAdmin, ReadOnlyInline
from .filters import BatchFilter, CreatedFilter, DetailedStatusFilter, TemplateFilter

_BADGE_COLOURS = {
    status.PENDING: "#6c757d",
    status.SUBMITTING: "#6c757d",
    status.UNCERTAIN: "#b8860b",
    status.QUEUED: "#0d6efd",
    status.SENDING: "#0d6efd",
    status.SUBMITTED: "#0d6efd",
    status.SENT: "#198754",
    status.FAILED_DND: "#dc3545",
    status.FAILED: "#dc3545",
    status.REJECTED: "#dc3545",
}


def status_badge_html(value: str, label: str) -> SafeString:
    colour = _BADGE_COLOURS.get(value, "#6c757d")
    return format_html(
        '<span class="exotel-status exotel-status-{}" title="{}" style="background:{};color:#fff;'
        'padding:1px 6px;border-radius:8px;white-space:nowrap">{}</span>',
        value,
        label,
        colour,
        value,
    )


class StatusEventInline(ReadOnlyInline):
    model = StatusEvent
    fields = readonly_fields = (
        "created_at",
        "status",
        "detailed_status_code",
        "detailed_status",
        "source",
        "applied",
        "note",
    )
    ordering = ("created_at", "pk")
    verbose_name_plural = _("status history")


class ClickEventInline(ReadOnlyInline):
    model = ClickEvent
    fields = readonly_fields = (
        "created_at",
        "short_url",
        "long_url",
        "total_clicks",
        "ip",
        "city",
        "country",
        "os_name",
        "device_name",
    )
    ordering = ("-created_at",)


_MAIN_FIELDS = ("to", "sender", "body", "template", "batch", "custom_field", "account")
_STATUS_FIELDS = (
    "status_badge",
    "status_reason",
    "sid",
    "detailed_status_code",
    "detailed_status",
    "detailed_status_description",
    "error_code",
    "error_message",
    "sms_units",
    "price",
)
_OPTION_FIELDS = (
    "dlt_template_id",
    "dlt_entity_id",
    "sms_type",
    "encoding",
    "segments",
    "priority",
    "shorten_urls",
    "shorten_url_params",
)
_DELIVERY_FIELDS = (
    "attempts",
    "created_at",
    "submitted_at",
    "sent_at",
    "updated_at",
    "next_attempt_at",
    "claimed_at",
    "request_started_at",
)


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    list_display = (
        "status_badge",
        "to",
        "template",
        "batch_link",
        "short_body",
        "detailed",
        "created_at",
        "sent_at",
    )
    list_display_links = ("status_badge", "to")
    list_filter = (
        "status",
        DetailedStatusFilter,
        TemplateFilter,
        BatchFilter,
        CreatedFilter,
    )
    # Exact matches only, so the to / sid / custom_field indexes answer them.
    search_fields = ("=to", "=sid", "=custom_field")
    search_help_text = _(
        "Exact phone number (any format: 09876543210 finds +919876543210), Exotel Sid or "
        "custom field."
    )
    list_select_related = ("template", "batch")
    raw_id_fields = ("template", "batch")
    # Sorting other columns would sort millions of rows without an index.
    sortable_by = ("created_at",)
    actions = (actions.resend_messages, actions.refresh_status)
    inlines = (StatusEventInline, ClickEventInline)
    fieldsets = (
        (None, {"fields": _MAIN_FIELDS}),
        (_("Status"), {"fields": _STATUS_FIELDS}),
        (_("DLT and options"), {"fields": _OPTION_FIELDS}),
        (_("Delivery"), {"fields": _DELIVERY_FIELDS}),
    )
    readonly_fields = _MAIN_FIELDS + _STATUS_FIELDS + _OPTION_FIELDS + _DELIVERY_FIELDS

    @admin.display(description=_("status"))
    def status_badge(self, obj: SmsMessage) -> SafeString:
        return status_badge_html(obj.status, obj.get_status_display())

    @admin.display(description=_("batch"))
    def batch_link(self, obj: SmsMessage) -> SafeString | str:
        if obj.batch_id is None:
            return "-"
        return format_html('<a href="?batch__id__exact={}">{}</a>', obj.batch_id, obj.batch)

    @admin.display(description=_("text"))
    def short_body(self, obj: SmsMessage) -> str:
        return Truncator(obj.body).chars(50)

    @admin.display(description=_("detailed status"))
    def detailed(self, obj: SmsMessage) -> SafeString | str:
        if obj.detailed_status_code is None and not obj.detailed_status:
            return obj.status_reason or "-"  # why the send gate held or refused it
        return format_html(
            '<span title="{}">{} {}</span>',
            obj.detailed_status_description,
            "" if obj.detailed_status_code is None else obj.detailed_status_code,
            obj.detailed_status,
        )

    @admin.display(description=_("meaning"))
    def detailed_status_description(self, obj: SmsMessage) -> str:
        return obj.detailed_status_description or "-"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        # delete_selected collects every related row of every selected message.
        found.pop("delete_selected", None)
        return found

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Resending creates messages: it needs the add permission (the add page stays off)."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[SmsMessage], search_term: str
    ) -> tuple[QuerySet[SmsMessage], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(to=term) | Q(sid=term) | Q(custom_field=term)
        try:
            number = phone.normalize(term, get_settings().default_region)
        except phone.InvalidNumber:
            number = None
        if number and number != term:
            condition |= Q(to=number)
        return queryset.filter(condition), False
