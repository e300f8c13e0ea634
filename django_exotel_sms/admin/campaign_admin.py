"""Send a campaign from the admin: compose -> preview (nothing saved) -> confirm -> the batch.

Every step needs ``send_campaign`` on top of add permission on messages (403 otherwise).
The draft lives in the operator's session under a random token; the confirm writes a
``Campaign`` row whose ``confirm_token`` is unique, so a replayed or double-submitted
confirm finds that row and goes to its batch instead of creating a second one.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, router, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import campaigns, dlt
from ..compose import SmsValidationError
from ..models import SMS_TYPE_CHOICES, Campaign, SmsBatch, SmsMessage, SmsTemplate
from .base import ReadOnlyAdmin
from .preview import ENCODING_LABELS

SESSION_KEY = "django_exotel_sms_campaigns"


class _Changed(Exception):
    """The file or the template gave other recipients at confirm than at the preview."""


MAX_DRAFTS = 5  # per session; older drafts (and their files) are dropped


class ComposeForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Campaign name"), max_length=200, required=False)
    template = forms.ModelChoiceField(
        queryset=SmsTemplate.objects.filter(is_active=True),
        required=False,
        help_text=gettext_lazy("A DLT template; or leave empty and write a free text."),
    )
    body = forms.CharField(
        label=gettext_lazy("Free text"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        strip=False,
    )
    sender = forms.CharField(
        label=gettext_lazy("Sender ID"),
        max_length=40,
        required=False,
        help_text=gettext_lazy("Empty: the template's sender, else the account default."),
    )
    sms_type = forms.ChoiceField(
        label=gettext_lazy("SMS type"),
        choices=[("", gettext_lazy("The template's")), *SMS_TYPE_CHOICES],
        required=False,
    )
    language = forms.CharField(
        max_length=16,
        required=False,
        help_text=gettext_lazy("For rows without a language column, e.g. hi. Empty: default."),
    )
    send_at = forms.DateTimeField(
        label=gettext_lazy("Send at"),
        required=False,
        help_text=gettext_lazy(
            "Empty: at once. YYYY-MM-DD HH:MM in the site's time zone; a closed sending "
            "window defers it further (the preview says until when)."
        ),
    )
    numbers = forms.CharField(
        label=gettext_lazy("Pasted numbers"),
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text=gettext_lazy("One number per line (free text or templates without values)."),
    )
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        required=False,
        help_text=gettext_lazy("UTF-8, a header row; a number column, values, maybe a language."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("template")) == bool(data.get("body")):
            raise forms.ValidationError(_("Choose a template or write a free text (one of them)."))
        if bool(data.get("numbers", "").strip()) == bool(data.get("file")):
            raise forms.ValidationError(_("Paste numbers or upload a CSV file (one of them)."))
        return data


class MappingForm(forms.Form):
    """Which column is what; choices are the file's header cells."""

    def __init__(self, headers: list[str], placeholders: list[dlt.Placeholder], *a: Any, **kw: Any):
        super().__init__(*a, **kw)
        columns = [(str(i), h or f"#{i + 1}") for i, h in enumerate(headers)]
        optional = [("", "-"), *columns]
        self.fields["number_column"] = forms.ChoiceField(label=_("Number"), choices=columns)
        self.fields["language_column"] = forms.ChoiceField(
            label=_("Language"), choices=optional, required=False
        )
        for position, placeholder in enumerate(placeholders, start=1):
            self.fields[f"var{position}"] = forms.ChoiceField(
                label=_("Variable %(n)s %(tag)s") % {"n": position, "tag": placeholder.tag},
                choices=optional,
                required=False,
            )
        self.placeholder_count = len(placeholders)

    def apply(self, draft: campaigns.Draft) -> None:
        data = self.cleaned_data
        draft.number_column = int(data["number_column"])
        draft.language_column = int(data["language_column"]) if data["language_column"] else None
        draft.variable_columns = [
            int(data[f"var{i}"]) if data.get(f"var{i}") else None
            for i in range(1, self.placeholder_count + 1)
        ]


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    """The audit of campaigns sent from the admin, and the way to send one."""

    list_display = (
        "__str__",
        "created_by",
        "created_at",
        "file_name",
        "rows_total",
        "rows_valid",
        "rows_invalid",
        "rows_duplicate",
        "batch_link",
    )
    list_select_related = ("created_by", "batch", "template")
    search_fields = ("name", "file_name")
    fields = (
        "name",
        "template",
        "sender",
        "sms_type",
        "created_by",
        "created_at",
        "file_name",
        "rows_total",
        "rows_valid",
        "rows_invalid",
        "rows_duplicate",
        "estimated_units",
        "batch_link",
    )
    readonly_fields = fields
    change_list_template = "admin/django_exotel_sms/campaign/change_list.html"

    @admin.display(description=gettext_lazy("batch"))
    def batch_link(self, obj: Campaign) -> SafeString | str:
        if obj.batch_id is None:
            return "-"
        return format_html('<a href="{}">{}</a>', self._batch_url(obj.batch_id), obj.batch)

    # -- permissions ---------------------------------------------------------------------

    def has_send_permission(self, request: HttpRequest) -> bool:
        opts = SmsMessage._meta
        user = request.user
        return user.has_perm(f"{opts.app_label}.send_campaign") and user.has_perm(
            f"{opts.app_label}.add_{opts.model_name}"
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Who may send campaigns may see them (and reach "Send a campaign" from the list).
        return super().has_view_permission(request, obj) or self.has_send_permission(request)

    def _require_send(self, request: HttpRequest) -> None:
        if not self.has_send_permission(request):
            raise PermissionDenied

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {"can_send_campaign": self.has_send_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    # -- urls ----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("send/", wrap(self.compose_view), name=f"{info}_compose"),
            path("send/<str:token>/", wrap(self.preview_view), name=f"{info}_preview"),
            path(
                "send/<str:token>/invalid.csv",
                wrap(self.invalid_csv_view),
                name=f"{info}_invalid_csv",
            ),
            path(
                "send/<str:token>/confirm/",
                wrap(self.confirm_view),
                name=f"{info}_confirm",
            ),
            *super().get_urls(),
        ]

    def _url(self, view: str, *args: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=args, current_app=self.admin_site.name)

    def _batch_url(self, pk: int) -> str:
        opts = SmsBatch._meta
        return reverse(
            f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[pk],
            current_app=self.admin_site.name,
        )

    def _render(self, request: HttpRequest, template_name: str, **context: Any) -> TemplateResponse:
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            template_name,
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "app_label": self.opts.app_label,
                **context,
            },
        )

    # -- drafts in the session -----------------------------------------------------------

    def _drafts(self, request: HttpRequest) -> dict[str, dict[str, Any]]:
        drafts: dict[str, dict[str, Any]] = request.session.get(SESSION_KEY, {})
        return drafts

    def _save_draft(self, request: HttpRequest, draft: campaigns.Draft) -> None:
        drafts = self._drafts(request)
        drafts[draft.token] = draft.as_dict()
        while len(drafts) > MAX_DRAFTS:
            oldest = next(iter(drafts))
            campaigns.storage().delete(drafts.pop(oldest)["path"])
        request.session[SESSION_KEY] = drafts

    def _drop_draft(self, request: HttpRequest, token: str) -> None:
        drafts = self._drafts(request)
        data = drafts.pop(token, None)
        if data is not None:
            campaigns.storage().delete(data["path"])
            request.session[SESSION_KEY] = drafts

    def _draft(self, request: HttpRequest, token: str) -> campaigns.Draft | None:
        data = self._drafts(request).get(token)
        return campaigns.Draft.from_dict(data) if data is not None else None

    @staticmethod
    def _template(draft: campaigns.Draft) -> SmsTemplate | None:
        if draft.template_id is None:
            return None
        tpl = SmsTemplate.objects.select_related("sender", "entity").filter(pk=draft.template_id)
        found = tpl.first()
        if found is None:
            raise Http404(_("The campaign's template no longer exists."))
        return found

    # -- the steps -----------------------------------------------------------------------

    def compose_view(self, request: HttpRequest) -> HttpResponse:
        """Step 1: what to send and to whom; the file is stored, nothing else is saved."""
        self._require_send(request)
        if request.method == "POST":
            form = ComposeForm(request.POST, request.FILES)
            if form.is_valid():
                draft = self._start_draft(form)
                self._save_draft(request, draft)
                return HttpResponseRedirect(self._url("preview", draft.token))
        else:
            form = ComposeForm()
        return self._render(
            request,
            "admin/django_exotel_sms/campaign/compose.html",
            title=_("Send a campaign"),
            form=form,
        )

    def _start_draft(self, form: ComposeForm) -> campaigns.Draft:
        data = form.cleaned_data
        token = secrets.token_urlsafe(24)
        store = campaigns.storage()
        upload = data.get("file")
        if upload is not None:
            file_name = upload.name or "upload.csv"
            path = store.save(f"{token}.csv", upload)  # streamed to disk in chunks
        else:
            from django.core.files.base import ContentFile

            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["number"])
            writer.writerows([n.strip()] for n in data["numbers"].splitlines() if n.strip())
            file_name = ""
            path = store.save(f"{token}.csv", ContentFile(out.getvalue().encode()))
        tpl: SmsTemplate | None = data.get("template")
        draft = campaigns.Draft(
            token=token,
            path=path,
            file_name=file_name[:255],
            template_id=tpl.pk if tpl is not None else None,
            body=data.get("body") or "",
            sender=data.get("sender") or "",
            sms_type=data.get("sms_type") or "",
            language=data.get("language") or "",
            name=data.get("name") or "",
            send_at=data["send_at"].isoformat() if data.get("send_at") else "",
        )
        placeholders = len(tpl.placeholders) if tpl is not None else 0
        headers = campaigns.read_header(path)
        draft.number_column, draft.language_column, draft.variable_columns = campaigns.auto_map(
            headers, placeholders
        )
        return draft

    def _found_draft(self, request: HttpRequest, token: str) -> campaigns.Draft:
        draft = self._draft(request, token)
        if draft is None:
            raise Http404(_("No such campaign draft (it was sent or has expired)."))
        return draft

    def preview_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """Step 2: column mapping and what would be sent; POST changes the mapping."""
        self._require_send(request)
        draft = self._found_draft(request, token)
        tpl = self._template(draft)
        placeholders = tpl.placeholders if tpl is not None else []
        headers = campaigns.read_header(draft.path)
        if request.method == "POST":
            form = MappingForm(headers, placeholders, request.POST)
            if form.is_valid():
                form.apply(draft)
                self._save_draft(request, draft)
                return HttpResponseRedirect(self._url("preview", token))
        else:
            initial = {
                "number_column": str(draft.number_column),
                "language_column": "" if draft.language_column is None else draft.language_column,
            }
            for i, column in enumerate(draft.variable_columns, start=1):
                initial[f"var{i}"] = "" if column is None else str(column)
            form = MappingForm(headers, placeholders, initial=initial)
        summary = campaigns.summarize(draft, tpl)
        # Confirm counts again: nothing is sent if it differs from what was shown.
        draft.expected_valid = summary.valid
        self._save_draft(request, draft)
        return self._render(
            request,
            "admin/django_exotel_sms/campaign/preview.html",
            title=_("Preview the campaign"),
            draft=draft,
            template=tpl,
            form=form,
            summary=summary,
            encodings=[
                (ENCODING_LABELS.get(k, k), n) for k, n in sorted(summary.encodings.items())
            ],
            segments=sorted(summary.segments.items()),
            languages=[
                {"language": lang or _("default"), "dlt_template_id": dlt_id, "count": n}
                for (lang, dlt_id), n in sorted(summary.languages.items())
            ],
            reasons=summary.reasons.most_common(),
            invalid_url=self._url("invalid_csv", token),
            confirm_url=self._url("confirm", token),
            compose_url=self._url("compose"),
        )

    def invalid_csv_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """The rows left out, with the reason; computed again from the stored file."""
        self._require_send(request)
        draft = self._found_draft(request, token)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="campaign-invalid-rows.csv"'
        campaigns.write_invalid_csv(draft, self._template(draft), response)
        return response

    def confirm_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """Step 3 (POST only, CSRF-checked): one Campaign row and one batch, through send_bulk."""
        self._require_send(request)  # before anything else: 403 whatever the method
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        existing = Campaign.objects.filter(confirm_token=token).first()
        if existing is not None:  # a replay: the first confirm already sent it
            return self._to_campaign(request, existing)
        draft = self._found_draft(request, token)
        tpl = self._template(draft)
        tally = campaigns.Summary()

        def counted() -> Iterator[dict[str, Any]]:
            # One pass: send_bulk validates and saves the rows this yields, and the
            # counts for the audit come from the same reading of the file.
            for row in campaigns.check_rows(draft, tpl):
                tally.rows += 1
                if row.message is not None:
                    tally.valid += 1
                    tally.units += row.fields["segments"] if row.fields else 0
                    yield row.message
                elif row.reason == "duplicate":
                    tally.duplicates += 1
                else:
                    tally.invalid += 1

        using = router.db_for_write(Campaign)
        try:
            with transaction.atomic(using=using):
                campaign = Campaign.objects.using(using).create(
                    confirm_token=token,
                    name=draft.name,
                    template=tpl,
                    sender=draft.sender,
                    sms_type=draft.sms_type,
                    file_name=draft.file_name,
                    created_by=request.user,
                )
                batch = SmsMessage.objects.send_bulk(
                    messages=counted(),
                    template=tpl,  # the batch's template, for its page; rows name it too
                    name=draft.name or (draft.file_name or _("Campaign")),
                    created_by=request.user,
                    send_at=draft.start_time(),
                )
                if tally.valid != draft.expected_valid:
                    raise _Changed  # rolls back the batch and the campaign row
                campaign.batch = batch
                campaign.rows_total = tally.rows
                campaign.rows_valid = tally.valid
                campaign.rows_invalid = tally.invalid
                campaign.rows_duplicate = tally.duplicates
                campaign.estimated_units = tally.units
                campaign.save()
        except IntegrityError:  # a concurrent confirm of the same draft won the race
            existing = Campaign.objects.filter(confirm_token=token).first()
            if existing is None:
                raise
            return self._to_campaign(request, existing)
        except _Changed:
            self.message_user(
                request,
                _("The recipients changed since the preview; nothing was sent. Check again."),
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("preview", token))
        except SmsValidationError as exc:
            for texts in exc.message_dict.values():
                for text in texts:
                    self.message_user(request, text, messages.ERROR)
            return HttpResponseRedirect(self._url("preview", token))
        self._drop_draft(request, token)
        self.message_user(
            request,
            _("Campaign saved: %(n)s messages queued for sending.") % {"n": batch.total},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._batch_url(batch.pk))

    def _to_campaign(self, request: HttpRequest, campaign: Campaign) -> HttpResponse:
        self.message_user(request, _("This campaign was already sent."), messages.WARNING)
        if campaign.batch_id is not None:
            return HttpResponseRedirect(self._batch_url(campaign.batch_id))
        return HttpResponseRedirect(self._url("change", campaign.pk))
