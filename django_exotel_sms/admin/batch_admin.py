"""Batches: a cheap list, and progress per status on the batch's own page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from .. import status
from ..models import SmsBatch, SmsMessage
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
