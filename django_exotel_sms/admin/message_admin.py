"""The message list operations people live in: built for millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from .. import phone, scheduling, status
from ..conf import get_settings
from ..models import ClickEvent, SmsMessage, StatusEvent
from . import actions
from .base import ReadOnlyAdmin, ReadOnlyInline
from .filters import BatchFilter, CreatedFilter, DetailedStatusFilter, TemplateFilter
from .labels import labelled_form

_TIME_FORMAT = "j M Y, H:i"  # compact: the day and the minute, in the current time zone

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


def breakable(name: str) -> SafeString:
    """``FAILED_INVALID_DESTINATION_NUMBER`` that may wrap after its underscores."""
    return format_html_join(mark_safe("_<wbr>"), "{}", ((part,) for part in name.split("_")))


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
    "send_at",
    "expires_at",
    "waiting",
    "next_attempt_at",
    "claimed_at",
    "request_started_at",
)


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    # Five columns, so the text and the detailed status fit a 1366 px screen with the
    # navigation and filter sidebars open: the template and batch go under the text, the
    # sending time under the creation time.
    list_display = (
        "status_badge",
        "to",
        "short_body",
        "detailed",
        "times",
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
    sortable_by = ("times",)
    actions = (actions.resend_messages, actions.refresh_status, actions.cancel_messages)
    inlines = (StatusEventInline, ClickEventInline)
    fieldsets = (
        (None, {"fields": _MAIN_FIELDS}),
        (_("Status"), {"fields": _STATUS_FIELDS}),
        (_("DLT and options"), {"fields": _OPTION_FIELDS}),
        (_("Delivery"), {"fields": _DELIVERY_FIELDS}),
    )
    readonly_fields = _MAIN_FIELDS + _STATUS_FIELDS + _OPTION_FIELDS + _DELIVERY_FIELDS
    form = labelled_form(SmsMessage)

    class Media:
        css = {"all": ("django_exotel_sms/admin.css",)}

    @admin.display(description=_("status"))
    def status_badge(self, obj: SmsMessage) -> SafeString:
        return status_badge_html(obj.status, obj.get_status_display())

    @admin.display(description=_("text"))
    def short_body(self, obj: SmsMessage) -> SafeString:
        """The text's start; under it, its template and batch (a link filtering the list)."""
        text = Truncator(obj.body).chars(80)
        template = breakable(str(obj.template)) if obj.template_id is not None else ""
        if obj.batch_id is None:
            if not template:
                return format_html("{}", text)
            return format_html('{}<span class="exotel-sub">{}</span>', text, template)
        return format_html(
            '{}<span class="exotel-sub">{}{}<a href="?batch__id__exact={}">{}</a></span>',
            text,
            template,
            " \N{MIDDLE DOT} " if template else "",
            obj.batch_id,
            obj.batch,
        )

    @admin.display(description=_("detailed status"))
    def detailed(self, obj: SmsMessage) -> SafeString | str:
        if obj.detailed_status_code is None and not obj.detailed_status:
            return obj.status_reason or "-"  # why the send gate held or refused it
        # The code, and the name under it (it may break at underscores, never be cut off).
        return format_html(
            '<span title="{}"><span class="exotel-detail-code">{}</span>'
            '<span class="exotel-sub">{}</span></span>',
            obj.detailed_status_description,
            "" if obj.detailed_status_code is None else obj.detailed_status_code,
            breakable(obj.detailed_status),
        )

    @admin.display(description=_("created / sent"), ordering="created_at")
    def times(self, obj: SmsMessage) -> SafeString:
        created = date_format(timezone.localtime(obj.created_at), _TIME_FORMAT)
        if obj.sent_at is not None:
            sent = date_format(timezone.localtime(obj.sent_at), _TIME_FORMAT)
            return format_html('{}<span class="exotel-sub">{} {}</span>', created, _("sent"), sent)
        if obj.deferred_until is not None:
            # A pending message held for its time: when it may leave, and why.
            return format_html('{}<span class="exotel-sub">{}</span>', created, self.waiting(obj))
        return format_html("{}", created)

    @admin.display(description=_("waiting"))
    def waiting(self, obj: SmsMessage) -> str:
        """``deferred until ...`` for a pending message held for its time (and why)."""
        until = obj.deferred_until
        if until is None:
            return "-"
        local = timezone.localtime(until).strftime("%Y-%m-%d %H:%M:%S %Z")
        why = {
            scheduling.SCHEDULED: _("scheduled"),
            scheduling.WINDOW: _("sending window"),
        }.get(obj.status_reason, _("retry"))
        return _("deferred until %(when)s (%(why)s)") % {"when": local, "why": why}

    @admin.display(description=_("meaning"))
    def detailed_status_description(self, obj: SmsMessage) -> str:
        return obj.detailed_status_description or "-"

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        # Django 6.1 passes where the actions are shown (an ActionLocation) and warns about
        # overrides without this parameter; Django 4.2-6.0 call get_actions(request).
        if action_location is None:
            found = super().get_actions(request)
        else:
            location: dict[str, Any] = {"action_location": action_location}
            found = super().get_actions(request, **location)
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
