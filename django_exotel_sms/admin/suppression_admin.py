"""The suppression list: search by any number format, filters, add, CSV import and export."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import phone, suppression, suppression_csv
from ..models import Suppression
from .base import BigTableMixin, ModelAdmin


class ActiveFilter(admin.SimpleListFilter):
    title = gettext_lazy("in force")
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", _("In force")), ("no", _("Expired"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        now = timezone.now()
        if self.value() == "yes":
            return suppression.active(queryset, now)
        if self.value() == "no":
            return queryset.filter(expires_at__lte=now)
        return queryset


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "Columns: number, reason, scope, source, note, expires_at (only number is "
            "required). Numbers in any format; existing entries are updated."
        ),
    )


@admin.register(Suppression)
class SuppressionAdmin(BigTableMixin, ModelAdmin):
    list_display = ("number", "reason", "scope", "source", "created_at", "expires_at", "note")
    list_filter = ("reason", "scope", "source", ActiveFilter)
    search_fields = ("=number",)
    search_help_text = gettext_lazy(
        "Exact phone number, in any format: 09876543210 finds +919876543210."
    )
    fields = ("number", "reason", "scope", "note", "expires_at", "source", "created_at")
    readonly_fields = ("source", "created_at")
    actions = ("export_csv",)
    change_list_template = "admin/django_exotel_sms/suppression/change_list.html"

    def save_model(self, request: HttpRequest, obj: Suppression, form: Any, change: bool) -> None:
        if not change and not obj.source:
            obj.source = "admin"
        super().save_model(request, obj, form, change)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(number=term)
        with contextlib.suppress(phone.InvalidNumber):  # not a number: exact text only
            condition |= Q(number=suppression.normalize(term))
        return queryset.filter(condition), False

    @admin.action(description=gettext_lazy("Export selected suppressions as CSV"))
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Suppression]
    ) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            suppression_csv.export_lines(queryset), content_type="text/csv; charset=utf-8"
        )
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="suppressions-{stamp}.csv"'
        return response

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name=f"{info}_import",
            ),
            *super().get_urls(),
        ]

    def _may_import(self, request: HttpRequest) -> bool:
        # Importing adds new entries and updates existing ones.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**(extra_context or {}), "may_import": self._may_import(request)}
        return super().changelist_view(request, context)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the upload form; POST: import the file and go back to the list."""
        if not self._may_import(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            text = io.TextIOWrapper(upload.file, encoding="utf-8-sig", newline="")
            result = suppression_csv.import_csv(text, source="admin import")
            self.message_user(
                request,
                ngettext(
                    "Imported %(count)d suppression.",
                    "Imported %(count)d suppressions.",
                    result.imported,
                )
                % {"count": result.imported},
                messages.SUCCESS,
            )
            if result.invalid:
                self.message_user(
                    request,
                    _("%(count)d line(s) skipped: %(errors)s")
                    % {"count": result.invalid, "errors": "; ".join(result.errors)},
                    messages.WARNING,
                )
            info = f"{self.opts.app_label}_{self.opts.model_name}"
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:{info}_changelist"))
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            "admin/django_exotel_sms/suppression/import.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "app_label": self.opts.app_label,
                "title": _("Import suppressions from CSV"),
                "form": form,
            },
        )
