"""SMS templates: edit with placeholder validation, preview with sample values, test send."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import dlt, encoding, status
from ..compose import SmsValidationError
from ..models import SmsMessage, SmsTemplate, SmsTemplateVariant
from ..suppression import RecipientLimitExceeded
from .base import ModelAdmin, StackedInline
from .labels import labelled_form
from .preview import (
    ENCODING_LABELS,
    Preview,
    TestSendForm,
    VariablesForm,
    preview,
    substitute,
)


def text_cost(body: str) -> str:
    """Encoding and parts of a template's fixed text (values add to it when sending)."""
    if not body:
        return "-"
    try:
        fixed = substitute(body, [""] * len(dlt.parse_template(body)))
    except dlt.DltTemplateError as exc:
        return str(exc)
    info = encoding.count_segments(fixed)
    return _("%(enc)s; fixed text %(len)s units = %(n)s part(s) before values") % {
        "enc": ENCODING_LABELS.get(info.encoding, info.encoding),
        "len": info.length,
        "n": info.segments,
    }


class SmsTemplateVariantInline(StackedInline):
    """Language variants under their template, each with its encoding and parts."""

    model = SmsTemplateVariant
    extra = 0
    fields = ("language", "body", "dlt_template_id", "variant_preview")
    readonly_fields = ("variant_preview",)

    @admin.display(description=gettext_lazy("preview"))
    def variant_preview(self, obj: SmsTemplateVariant) -> str:
        return text_cost(obj.body) if obj.pk else "-"


@admin.register(SmsTemplate)
class SmsTemplateAdmin(ModelAdmin):
    list_display = (
        "name",
        "dlt_template_id",
        "sms_type",
        "sender",
        "is_active",
        "placeholder_count",
        "tools",
    )
    list_filter = ("sms_type", "is_active")
    list_select_related = ("sender",)
    search_fields = ("name", "dlt_template_id")
    autocomplete_fields = ("sender", "entity")
    readonly_fields = ("placeholder_summary", "text_preview", "created_at", "updated_at")
    inlines = (SmsTemplateVariantInline,)
    fields = (
        "name",
        "body",
        "placeholder_summary",
        "text_preview",
        "dlt_template_id",
        "sms_type",
        "sender",
        "entity",
        "is_active",
        "valid_for",
        "created_at",
        "updated_at",
    )
    change_form_template = "admin/django_exotel_sms/smstemplate/change_form.html"
    form = labelled_form(SmsTemplate)

    class Media:
        css = {"all": ("django_exotel_sms/admin.css",)}

    @admin.display(description=gettext_lazy("placeholders"))
    def placeholder_count(self, obj: SmsTemplate) -> str:
        try:
            return str(len(obj.placeholders))
        except dlt.DltTemplateError:
            return _("invalid")

    @admin.display(description=gettext_lazy("encoding and parts"))
    def text_preview(self, obj: SmsTemplate) -> str:
        return text_cost(obj.body)

    @admin.display(description=gettext_lazy("placeholders in order"))
    def placeholder_summary(self, obj: SmsTemplate) -> str:
        if not obj.body:
            return "-"
        try:
            tags = [p.tag for p in obj.placeholders]
        except dlt.DltTemplateError as exc:
            return str(exc)
        return ", ".join(f"{i}: {tag}" for i, tag in enumerate(tags, start=1)) or _("none")

    @admin.display(description=gettext_lazy("tools"))
    def tools(self, obj: SmsTemplate) -> SafeString:
        return format_html(
            '<a class="button" href="{}">{}</a> <a class="button" href="{}">{}</a>',
            reverse(self._url_name("preview"), args=[obj.pk], current_app=self.admin_site.name),
            _("Preview"),
            reverse(self._url_name("test_send"), args=[obj.pk], current_app=self.admin_site.name),
            _("Test send"),
        )

    def _url_name(self, view: str) -> str:
        return f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/preview/",
                wrap(self.preview_view),
                name=f"{info}_preview",
            ),
            path(
                "<path:object_id>/test-send/",
                wrap(self.test_send_view),
                name=f"{info}_test_send",
            ),
            *super().get_urls(),
        ]

    def _template_or_404(self, request: HttpRequest, object_id: str) -> SmsTemplate:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(_("No SMS template with id %(id)s.") % {"id": object_id})
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _render(
        self, request: HttpRequest, obj: SmsTemplate, template: str, **context: Any
    ) -> TemplateResponse:
        opts = self.opts
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": opts,
                "app_label": opts.app_label,
                "original": obj,
                "has_view_permission": True,
                **context,
            },
        )

    def _admin_form(self, form: VariablesForm, heading: str) -> helpers.AdminForm:
        """The form laid out like the admin's own (labels beside fields, help below)."""
        fieldsets = [(heading, {"fields": list(form.fields)})]
        # AdminForm lays out any form; the stubs ask for a ModelForm.
        return helpers.AdminForm(cast(Any, form), fieldsets, {}, model_admin=self)

    def _placeholders(self, obj: SmsTemplate) -> tuple[list[dlt.Placeholder], str]:
        try:
            return obj.placeholders, ""
        except dlt.DltTemplateError as exc:
            return [], str(exc)

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: a form with one input per placeholder; POST: the rendered text and its cost."""
        obj = self._template_or_404(request, object_id)
        placeholders, template_error = self._placeholders(obj)
        result = None
        variants: list[tuple[SmsTemplateVariant, Preview]] = []
        if request.method == "POST":
            form = VariablesForm(placeholders, request.POST)
            if form.is_valid():
                result = preview(obj.body, form.values())
                # The same values in each language: variants have the template's placeholders.
                variants = [(v, preview(v.body, form.values())) for v in obj.variants.all()]
        else:
            form = VariablesForm(placeholders)
        return self._render(
            request,
            obj,
            "admin/django_exotel_sms/smstemplate/preview.html",
            title=_("Preview %(name)s") % {"name": obj.name},
            form=form,
            adminform=self._admin_form(form, _("Sample values")),
            result=result,
            variants=variants,
            template_error=template_error,
            encoding_labels=ENCODING_LABELS,
            can_test_send=self.has_test_send_permission(request),
        )

    def has_test_send_permission(self, request: HttpRequest) -> bool:
        opts = SmsMessage._meta
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def test_send_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST a number and values: sends through the manager, then shows the new message."""
        obj = self._template_or_404(request, object_id)
        if not self.has_test_send_permission(request):
            raise PermissionDenied
        placeholders, template_error = self._placeholders(obj)
        if request.method == "POST":
            form = TestSendForm(placeholders, request.POST)
            if form.is_valid() and not template_error:
                try:
                    message = obj.send(
                        form.cleaned_data["to"],
                        form.values(),
                        send_at=form.cleaned_data.get("send_at"),
                        expires_at=form.cleaned_data.get("expires_at"),
                        send_async=True,
                    )
                except SmsValidationError as exc:
                    for field, texts in exc.message_dict.items():
                        target = field if field == "to" else None
                        for text in texts:
                            form.add_error(target, text if target else f"{field}: {text}")
                except RecipientLimitExceeded as exc:
                    form.add_error("to", str(exc))
                else:
                    if message.status == status.SUPPRESSED:
                        self.message_user(
                            request,
                            _("Test SMS to %(to)s saved but not sent: suppressed (%(reason)s).")
                            % {"to": message.to, "reason": message.status_reason},
                            messages.WARNING,
                        )
                    else:
                        if message.deferred_until is None:
                            text = _("Test SMS to %(to)s saved and queued for sending.")
                        else:
                            text = _("Test SMS to %(to)s saved, deferred until %(when)s.")
                        when = message.deferred_until
                        self.message_user(
                            request,
                            text % {"to": message.to, "when": when and localtime(when)},
                            messages.SUCCESS,
                        )
                    return HttpResponseRedirect(
                        reverse(
                            f"{self.admin_site.name}:{SmsMessage._meta.app_label}_"
                            f"{SmsMessage._meta.model_name}_change",
                            args=[message.pk],
                            current_app=self.admin_site.name,
                        )
                    )
        else:
            form = TestSendForm(placeholders)
        return self._render(
            request,
            obj,
            "admin/django_exotel_sms/smstemplate/test_send.html",
            title=_("Test send %(name)s") % {"name": obj.name},
            form=form,
            adminform=self._admin_form(form, _("Send one SMS with this template")),
            template_error=template_error,
        )
