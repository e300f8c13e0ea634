"""Message actions: resend, refresh and cancel, each behind a confirmation page.

The first POST (from the changelist) shows what will happen; only the second POST,
carrying ``post=yes``, does it. Sending goes through ``SmsMessage.objects.send``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import reconcile
from ..compose import SmsValidationError
from ..exceptions import ExotelError
from ..models import SmsMessage
from ..suppression import RecipientLimitExceeded

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from ..cancellation import CancelResult

    MessageAdmin = ModelAdmin[SmsMessage]
else:
    MessageAdmin = Any

logger = logging.getLogger(__name__)

MAX_SELECTED = 1000  # per action run; beyond that, narrow the changelist with filters
SHOWN_ON_CONFIRMATION = 100
REFRESH_INLINE_LIMIT = 20  # more than this are handed to Celery instead of a long request
LISTED_ERRORS = 10


def _confirm(
    modeladmin: MessageAdmin,
    request: HttpRequest,
    queryset: QuerySet[SmsMessage],
    *,
    action: str,
    title: str,
    question: str,
    button: str,
    run: Callable[[list[SmsMessage]], None],
) -> HttpResponse | None:
    chosen = list(queryset.select_related("template").order_by("-pk")[: MAX_SELECTED + 1])
    if len(chosen) > MAX_SELECTED:
        modeladmin.message_user(
            request,
            _("Choose at most %(max)s messages for one action; narrow the list with filters.")
            % {"max": f"{MAX_SELECTED:,}"},
            messages.ERROR,
        )
        return None
    if request.POST.get("post") == "yes":
        run(chosen)
        return None  # the admin redirects back to the changelist
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "button": button,
        "action": action,
        "opts": opts,
        "app_label": opts.app_label,
        "chosen": chosen,
        "shown": chosen[:SHOWN_ON_CONFIRMATION],
        "hidden_count": max(0, len(chosen) - SHOWN_ON_CONFIRMATION),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(
        request, "admin/django_exotel_sms/smsmessage/action_confirmation.html", context
    )


def _error_text(exc: SmsValidationError) -> str:
    return "; ".join(f"{field}: {' '.join(texts)}" for field, texts in exc.message_dict.items())


def _report_errors(
    modeladmin: MessageAdmin, request: HttpRequest, headline: str, errors: list[str]
) -> None:
    listed = errors[:LISTED_ERRORS]
    more = len(errors) - len(listed)
    text = headline + " " + " | ".join(listed)
    if more:
        text += " " + _("... and %(n)s more.") % {"n": more}
    modeladmin.message_user(request, text, messages.ERROR)


def resend_copy(message: SmsMessage) -> SmsMessage:
    """Send a new message with the original's text and options; the original is kept."""
    return SmsMessage.objects.send(
        message.to,
        message.body,
        sender=message.sender or None,
        template=message.template_id,
        dlt_template_id=message.dlt_template_id or None,
        dlt_entity_id=message.dlt_entity_id or None,
        sms_type=message.sms_type or None,
        custom_field=message.custom_field or None,
        priority=message.priority or None,
        shorten_urls=message.shorten_urls,
        shorten_url_params=message.shorten_url_params,
        account=message.account,
    )


@admin.action(description=_("Resend selected messages"), permissions=["resend"])
def resend_messages(
    modeladmin: MessageAdmin, request: HttpRequest, queryset: QuerySet[SmsMessage]
) -> HttpResponse | None:
    def run(chosen: list[SmsMessage]) -> None:
        created = 0
        errors: list[str] = []
        for message in chosen:
            try:
                resend_copy(message)
            except SmsValidationError as exc:
                errors.append(f"#{message.pk} ({message.to}): {_error_text(exc)}")
            except RecipientLimitExceeded as exc:
                errors.append(f"#{message.pk} ({message.to}): {exc}")
            else:
                created += 1
        if created:
            modeladmin.message_user(
                request,
                ngettext(
                    "Resent %(n)d message as a new message; the original is kept.",
                    "Resent %(n)d messages as new messages; the originals are kept.",
                    created,
                )
                % {"n": created},
                messages.SUCCESS,
            )
        if errors:
            _report_errors(
                modeladmin,
                request,
                ngettext(
                    "%(n)d message could not be resent:",
                    "%(n)d messages could not be resent:",
                    len(errors),
                )
                % {"n": len(errors)},
                errors,
            )

    return _confirm(
        modeladmin,
        request,
        queryset,
        action="resend_messages",
        title=_("Resend messages"),
        question=_(
            "Send these messages again? Each becomes a NEW message with the same number, text "
            "and options; the originals are kept unchanged."
        ),
        button=_("Yes, resend them"),
        run=run,
    )


def _refresh_now(modeladmin: MessageAdmin, request: HttpRequest, chosen: list[SmsMessage]) -> None:
    updated = unchanged = no_sid = 0
    errors: list[str] = []
    for message in chosen:
        if not message.sid:
            no_sid += 1
            continue
        try:
            if reconcile.refresh_message(message):
                updated += 1
            else:
                unchanged += 1
        except ExotelError as exc:
            errors.append(f"#{message.pk} ({message.to}): {exc}")
            if getattr(exc, "throttled", False):
                break  # Exotel asked us to slow down; the rest can wait
    modeladmin.message_user(
        request,
        _("Status refreshed from Exotel: %(updated)s updated, %(unchanged)s unchanged.")
        % {"updated": updated, "unchanged": unchanged}
        + (
            " " + _("%(n)s not sent to Exotel yet (no Sid), skipped.") % {"n": no_sid}
            if no_sid
            else ""
        ),
        messages.SUCCESS if updated or not errors else messages.WARNING,
    )
    if errors:
        _report_errors(
            modeladmin,
            request,
            _("Exotel could not be asked about %(n)s message(s):") % {"n": len(errors)},
            errors,
        )


def _refresh_later(
    modeladmin: MessageAdmin, request: HttpRequest, chosen: list[SmsMessage]
) -> None:
    from ..tasks import _options, refresh_message

    queued = no_sid = failed = 0
    for message in chosen:
        if not message.sid:
            no_sid += 1
            continue
        try:
            refresh_message.apply_async((message.pk,), **_options())
        except Exception:  # broker down: say so instead of failing the page
            logger.exception("Could not enqueue a status refresh for SMS %s", message.pk)
            failed += 1
        else:
            queued += 1
    text = _("Queued %(n)s status refreshes; statuses update as the workers get to them.") % {
        "n": queued
    }
    if no_sid:
        text += " " + _("%(n)s not sent to Exotel yet (no Sid), skipped.") % {"n": no_sid}
    modeladmin.message_user(request, text, messages.SUCCESS)
    if failed:
        modeladmin.message_user(
            request,
            _("%(n)s refreshes could not be queued (is the Celery broker up?).") % {"n": failed},
            messages.ERROR,
        )


@admin.action(description=_("Refresh status from Exotel"), permissions=["change"])
def refresh_status(
    modeladmin: MessageAdmin, request: HttpRequest, queryset: QuerySet[SmsMessage]
) -> HttpResponse | None:
    def run(chosen: list[SmsMessage]) -> None:
        if len(chosen) > REFRESH_INLINE_LIMIT:
            _refresh_later(modeladmin, request, chosen)
        else:
            _refresh_now(modeladmin, request, chosen)

    return _confirm(
        modeladmin,
        request,
        queryset,
        action="refresh_status",
        title=_("Refresh status from Exotel"),
        question=_(
            "Ask Exotel for the current status of these messages? More than %(n)s are "
            "handed to background workers."
        )
        % {"n": REFRESH_INLINE_LIMIT},
        button=_("Yes, refresh them"),
        run=run,
    )


def cancel_report(modeladmin: Any, request: HttpRequest, result: CancelResult) -> None:
    """Say what a cancel did, including what was too late to stop."""
    text = ngettext(
        "Cancelled %(n)d message; it will not be sent.",
        "Cancelled %(n)d messages; they will not be sent.",
        result.cancelled,
    ) % {"n": result.cancelled}
    if result.on_their_way:
        text += " " + _(
            "%(n)d already on their way (claimed by a worker or at Exotel): not cancelled."
        ) % {"n": result.on_their_way}
    if result.already_final:
        text += " " + _("%(n)d already final.") % {"n": result.already_final}
    level = messages.SUCCESS if result.cancelled else messages.WARNING
    modeladmin.message_user(request, text, level)


@admin.action(description=_("Cancel selected messages (if not sent yet)"), permissions=["change"])
def cancel_messages(
    modeladmin: MessageAdmin, request: HttpRequest, queryset: QuerySet[SmsMessage]
) -> HttpResponse | None:
    def run(chosen: list[SmsMessage]) -> None:
        result = SmsMessage.objects.filter(pk__in=[m.pk for m in chosen]).cancel()
        cancel_report(modeladmin, request, result)

    return _confirm(
        modeladmin,
        request,
        queryset,
        action="cancel_messages",
        title=_("Cancel messages"),
        question=_(
            "Cancel these messages? Those not yet claimed by a worker become 'cancelled' and "
            "are never sent; those already on their way to Exotel cannot be stopped."
        ),
        button=_("Yes, cancel them"),
        run=run,
    )
