"""Batches: a cheap list, and progress per status on the batch's own page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from .. import status
from ..models import SmsBatch, SmsMessage
from . import actions
from .actions import MAX_SELECTED
from .base import ReadOnlyAdmin

# Bar colours by kind of status; the same families as the message badges.
_FAMILIES = (
    ("sent", _("delivered"), "#198754", frozenset({status.SENT})),
    ("failed", _("failed"), "#dc3545", status.FAILURE_STATUSES),
    (
        "open",
        _("at Exotel"),
        "#0d6efd",
        frozenset({status.QUEUED, status.SENDING, status.SUBMITTED, status.UNCERTAIN}),
    ),
    # Kept from Exotel on purpose (suppressed, expired, cancelled): final, never sent.
    ("not_sent", _("not sent"), "#6c757d", status.NOT_SENT_STATUSES),
)


def progress_context(batch: SmsBatch, changelist_url: str) -> dict[str, Any]:
    progress = batch.progress()
    counts: dict[str, int] = progress["counts"]
    total = progress["total"] or 0
    known = {value for value, _label in status.STATUS_CHOICES}
    rows = [
        {
            "status": value,
            "label": label,
            "count": counts.get(value, 0),
            "url": f"{changelist_url}?batch__id__exact={batch.pk}&status__exact={value}",
        }
        for value, label in status.STATUS_CHOICES
    ]
    rows += [
        {"status": value, "label": value, "count": n, "url": ""}
        for value, n in sorted(counts.items())
        if value not in known
    ]
    bars = []
    for key, label, colour, members in _FAMILIES:
        n = sum(counts.get(s, 0) for s in members)
        if n and total:
            bars.append(
                {
                    "key": key,
                    "label": label,
                    "colour": colour,
                    "count": n,
                    "percent": round(100.0 * n / total, 1),
                }
            )
    return {"batch": batch, "progress": progress, "rows": rows, "bars": bars}


@admin.register(SmsBatch)
class SmsBatchAdmin(ReadOnlyAdmin):
    # No per-row counts here: progress costs one aggregate per batch, so only on its page.
    list_display = ("__str__", "kind", "total", "template", "created_by", "created_at")
    list_filter = ("kind",)
    list_select_related = ("template", "created_by")
    search_fields = ("name",)
    sortable_by = ("created_at", "total")
    actions = ("cancel_batches",)
    fields = (
        "name",
        "kind",
        "total",
        "template",
        "account",
        "created_by",
        "created_at",
        "messages_link",
        "progress_table",
    )
    readonly_fields = fields

    def _messages_url(self) -> str:
        opts = SmsMessage._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )

    @admin.display(description=_("messages"))
    def messages_link(self, obj: SmsBatch) -> SafeString:
        return format_html(
            '<a href="{}?batch__id__exact={}" class="exotel-batch-messages">{}</a>',
            self._messages_url(),
            obj.pk,
            _("Show the messages of this batch"),
        )

    @admin.display(description=_("progress"))
    def progress_table(self, obj: SmsBatch) -> SafeString:
        html = render_to_string(
            "django_exotel_sms/batch_progress.html", progress_context(obj, self._messages_url())
        )
        return mark_safe(html)  # noqa: S308  (rendered by an autoescaping template)

    @admin.action(
        description=_("Cancel unsent messages of selected batches"), permissions=["cancel"]
    )
    def cancel_batches(
        self, request: HttpRequest, queryset: QuerySet[SmsBatch]
    ) -> HttpResponse | None:
        batches = list(queryset.order_by("-pk")[:MAX_SELECTED])
        ids = [b.pk for b in batches]
        if request.POST.get("post") == "yes":
            result = SmsMessage.objects.filter(batch_id__in=ids).cancel()
            actions.cancel_report(self, request, result)
            return None
        pending = dict(
            SmsMessage.objects.filter(batch_id__in=ids, status=status.PENDING)
            .values("batch_id")
            .annotate(n=Count("pk"))
            .order_by()
            .values_list("batch_id", "n")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Cancel batches"),
            "question": _(
                "Cancel the messages of these batches that no worker has claimed yet? They "
                "become 'cancelled' and are never sent; messages already on their way to "
                "Exotel cannot be stopped."
            ),
            "action": "cancel_batches",
            "button": _("Yes, cancel them"),
            "opts": self.opts,
            "rows": [{"batch": b, "pending": pending.get(b.pk, 0)} for b in batches],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_exotel_sms/smsbatch/cancel_confirmation.html", context
        )

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Cancelling changes the batch's messages: it takes their change permission."""
        opts = SmsMessage._meta
        return bool(request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}"))
