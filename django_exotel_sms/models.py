"""What is stored: DLT identifiers, templates, batches, messages and their status history.

The message row is the outbox: it is written before anything is sent, and every
later step (claim, transport, record, callback, reconciliation) moves it forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from . import dlt, status
from .managers import SmsMessageManager

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from .cancellation import CancelResult

SMS_TYPE_CHOICES = [
    ("transactional", _("Transactional")),
    ("transactional_opt_in", _("Transactional (opt-in)")),
    ("promotional", _("Promotional")),
]
ENCODING_CHOICES = [("plain", _("GSM-7 (plain)")), ("unicode", _("UCS-2 (unicode)"))]
PRIORITY_CHOICES = [("normal", _("Normal")), ("high", _("High (OTP only)"))]


class DltEntity(models.Model):
    """A principal entity registered on India's DLT portal."""

    entity_id = models.CharField(_("DLT entity id"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("DLT entity")
        verbose_name_plural = _("DLT entities")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.entity_id})"

    def clean(self) -> None:
        if not self.entity_id.isdigit():
            raise ValidationError({"entity_id": _("A DLT entity id is made of digits only.")})


class SenderId(models.Model):
    """A sender ID (header): 6 letters for transactional SMS, 6 digits for promotional."""

    header = models.CharField(_("header"), max_length=11, unique=True)
    entity = models.ForeignKey(
        DltEntity,
        on_delete=models.PROTECT,
        related_name="senders",
        null=True,
        blank=True,
    )
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sender ID")
        verbose_name_plural = _("sender IDs")
        ordering = ["header"]

    def __str__(self) -> str:
        return self.header

    @property
    def is_promotional(self) -> bool:
        return self.header.isdigit()

    def clean(self) -> None:
        from .senders import header_problem  # the same rule as the Python API's

        problem = header_problem(self.header or "")
        if problem:
            raise ValidationError({"header": problem})
        self.header = self.header.upper()


class SmsTemplate(models.Model):
    """A DLT-registered content template; ``body`` holds its ``{#var#}`` placeholders."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    body = models.TextField(_("body"), help_text=_("DLT template text with {#var#} placeholders."))
    dlt_template_id = models.CharField(_("DLT template id"), max_length=32, blank=True)
    sms_type = models.CharField(
        _("SMS type"), max_length=24, choices=SMS_TYPE_CHOICES, default="transactional"
    )
    sender = models.ForeignKey(
        SenderId, on_delete=models.PROTECT, null=True, blank=True, related_name="templates"
    )
    entity = models.ForeignKey(
        DltEntity, on_delete=models.PROTECT, null=True, blank=True, related_name="templates"
    )
    is_active = models.BooleanField(_("active"), default=True)
    valid_for = models.DurationField(
        _("valid for"),
        null=True,
        blank=True,
        help_text=_(
            "Messages from this template expire if not handed to Exotel within this time "
            "(e.g. 00:10:00 for an OTP). Empty: the SMS type's default, or never."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("SMS template")
        verbose_name_plural = _("SMS templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            dlt.validate_template(self.body or "")
        except ValueError as exc:
            raise ValidationError({"body": str(exc)}) from exc
        if self.dlt_template_id and not self.dlt_template_id.isdigit():
            raise ValidationError(
                {"dlt_template_id": _("A DLT template id is made of digits only.")}
            )

    @property
    def placeholders(self) -> list[dlt.Placeholder]:
        return dlt.parse_template(self.body)

    def render(self, context: Mapping[str, Any] | Sequence[Any] | None = None) -> str:
        from .conf import get_settings

        limit = get_settings().dlt_max_var_length
        rendered = dlt.render(self.body, context or [], max_var_length=limit)
        result = dlt.match(self.body, rendered, max_var_length=limit)
        if not result.matched:
            raise dlt.DltRenderError(result.reason)
        return rendered

    def send(
        self, to: str, context: Mapping[str, Any] | Sequence[Any] | None = None, **options: Any
    ) -> SmsMessage:
        """Render with ``context`` and send to ``to``; options as for ``objects.send``."""
        return SmsMessage.objects.send(to, None, template=self, context=context, **options)

    def send_bulk(self, recipients: Iterable[Mapping[str, Any]], **options: Any) -> SmsBatch:
        """Send to many: each item is ``{"to": ..., "context": ..., "language": ...}``."""
        messages = (
            {
                "to": item["to"],
                "template": self,
                "context": item.get("context"),
                "language": item.get("language"),
            }
            for item in recipients
        )
        return SmsMessage.objects.send_bulk(messages=messages, **options)


class SmsTemplateVariant(models.Model):
    """The template in another language: its own text and DLT id (DLT registers each language)."""

    template = models.ForeignKey(SmsTemplate, on_delete=models.CASCADE, related_name="variants")
    language = models.CharField(
        _("language"), max_length=16, help_text=_("A language code such as hi or hi-IN.")
    )
    body = models.TextField(_("body"), help_text=_("DLT template text with {#var#} placeholders."))
    dlt_template_id = models.CharField(_("DLT template id"), max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("language variant")
        verbose_name_plural = _("language variants")
        ordering = ["template", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "language"], name="exotel_variant_template_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template} [{self.language}]"

    def clean(self) -> None:
        from .languages import normalize_language

        errors: dict[str, Any] = {}
        try:
            self.language = normalize_language(self.language or "")
        except ValueError as exc:
            errors["language"] = str(exc)
        try:
            placeholders = dlt.parse_template(self.body or "")
            dlt.validate_template(self.body or "")
        except ValueError as exc:
            errors["body"] = str(exc)
        else:
            # A campaign maps one set of columns to every variant, so the counts must agree.
            if self.template_id is not None:
                try:
                    expected = len(self.template.placeholders)
                except dlt.DltTemplateError:
                    expected = len(placeholders)
                if len(placeholders) != expected:
                    errors["body"] = _(
                        "The template has %(n)s placeholder(s); this variant has %(m)s."
                    ) % {"n": expected, "m": len(placeholders)}
        if self.dlt_template_id and not self.dlt_template_id.isdigit():
            errors["dlt_template_id"] = _("A DLT template id is made of digits only.")
        if errors:
            raise ValidationError(errors)


class SmsBatch(models.Model):
    """One bulk send. Counts per status are computed from its messages, so they never drift."""

    KIND_STATIC = "static"
    KIND_DYNAMIC = "dynamic"
    KIND_CHOICES = [(KIND_STATIC, _("Same text")), (KIND_DYNAMIC, _("Text per recipient"))]

    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    name = models.CharField(max_length=200, blank=True)
    template = models.ForeignKey(
        SmsTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="batches"
    )
    total = models.PositiveIntegerField(default=0)
    account = models.CharField(max_length=64, default="default")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("SMS batch")
        verbose_name_plural = _("SMS batches")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"Batch {self.pk} ({self.total} messages)"

    def status_counts(self) -> dict[str, int]:
        rows = self.messages.values("status").annotate(n=Count("pk")).order_by()
        return {row["status"]: row["n"] for row in rows}

    def progress(self, counts: dict[str, int] | None = None) -> dict[str, Any]:
        counts = self.status_counts() if counts is None else counts
        final = sum(n for s, n in counts.items() if status.is_terminal(s))
        accepted = sum(
            n
            for s, n in counts.items()
            if status.rank(s) >= status.rank(status.QUEUED) and not status.is_not_sent(s)
        )
        total = self.total or sum(counts.values())
        return {
            "total": total,
            "counts": counts,
            "final": final,
            "accepted": accepted,
            "percent_final": round(100.0 * final / total, 1) if total else 100.0,
            "done": final == total,
        }

    def cancel(self, reason: str = "cancelled") -> CancelResult:
        """Cancel this batch's messages not yet claimed; says how many were on their way."""
        return SmsMessage.objects.filter(batch_id=self.pk).cancel(reason)


class SmsMessage(models.Model):
    """One SMS to one number, and everything learnt about it."""

    to = models.CharField(_("to"), max_length=20)
    sender = models.CharField(_("sender"), max_length=40, blank=True)
    body = models.TextField(_("body"))
    template = models.ForeignKey(
        SmsTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    dlt_template_id = models.CharField(_("DLT template id"), max_length=32, blank=True)
    dlt_entity_id = models.CharField(_("DLT entity id"), max_length=32, blank=True)
    sms_type = models.CharField(_("SMS type"), max_length=24, choices=SMS_TYPE_CHOICES, blank=True)
    encoding = models.CharField(max_length=8, choices=ENCODING_CHOICES, default="plain")
    segments = models.PositiveSmallIntegerField(default=1)
    priority = models.CharField(max_length=8, choices=PRIORITY_CHOICES, blank=True)
    custom_field = models.CharField(max_length=255, blank=True)
    shorten_urls = models.BooleanField(_("shorten URLs"), null=True, blank=True)
    shorten_url_params = models.JSONField(_("shorten URL params"), null=True, blank=True)
    account = models.CharField(max_length=64, default="default")
    batch = models.ForeignKey(
        SmsBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )

    sid = models.CharField(_("Exotel Sid"), max_length=64, null=True, blank=True, unique=True)
    status = models.CharField(max_length=16, choices=status.STATUS_CHOICES, default=status.PENDING)
    # Why the send gate holds or refused it: a suppression reason for ``suppressed``, or
    # e.g. "scheduled" / "window" for a pending row waiting for its ``next_attempt_at``.
    status_reason = models.CharField(_("status reason"), max_length=32, blank=True)
    detailed_status_code = models.IntegerField(_("detailed status code"), null=True, blank=True)
    detailed_status = models.CharField(_("detailed status"), max_length=64, blank=True)
    sms_units = models.PositiveSmallIntegerField(_("SMS units"), null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    # Claiming: a worker owns the row while claim_token is its token and status is submitting.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set just before the HTTP request: a stale claim without it never reached Exotel.
    request_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    # "Not before": the claim takes a pending row only once this has passed. It holds a
    # retry's backoff, a scheduled send time, or the next opening of a sending window.
    next_attempt_at = models.DateTimeField(_("not before"), null=True, blank=True)
    send_at = models.DateTimeField(_("send at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SmsMessageManager()

    class Meta:
        verbose_name = _("SMS message")
        verbose_name_plural = _("SMS messages")
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="exotel_msg_status_created"),
            models.Index(fields=["batch", "status"], name="exotel_msg_batch_status"),
            models.Index(fields=["to", "created_at"], name="exotel_msg_to_created"),
            models.Index(fields=["custom_field"], name="exotel_msg_custom_field"),
            models.Index(fields=["created_at"], name="exotel_msg_created"),
            models.Index(fields=["detailed_status_code"], name="exotel_msg_detailed_code"),
            models.Index(fields=["status", "claimed_at"], name="exotel_msg_status_claimed"),
            models.Index(fields=["status", "updated_at"], name="exotel_msg_status_updated"),
            models.Index(fields=["status", "next_attempt_at"], name="exotel_msg_status_due"),
            models.Index(fields=["status", "expires_at"], name="exotel_msg_status_expires"),
        ]

    def __str__(self) -> str:
        return f"SMS to {self.to} ({self.status})"

    @property
    def is_final(self) -> bool:
        return status.is_terminal(self.status)

    @property
    def deferred_until(self) -> datetime | None:
        """When a pending message waits for its time (scheduled, or a window): that time."""
        if self.status == status.PENDING and self.next_attempt_at is not None:
            return self.next_attempt_at
        return None

    def cancel(self, reason: str = "cancelled") -> bool:
        """Cancel it if no worker has claimed it yet; True when it was cancelled now."""
        result = SmsMessage.objects.filter(pk=self.pk).cancel(reason)
        self.refresh_from_db(fields=["status", "status_reason", "next_attempt_at", "updated_at"])
        return result.cancelled == 1

    @property
    def detailed_status_description(self) -> str:
        info = status.describe_code(self.detailed_status_code)
        if info:
            return info.description
        if self.detailed_status_code is not None:
            return f"Unknown code {self.detailed_status_code} (kept as reported)"
        return ""


class StatusEvent(models.Model):
    """Every status a message went through, and where the news came from."""

    SOURCE_LOCAL = "local"
    SOURCE_API = "api"
    SOURCE_CALLBACK = "callback"
    SOURCE_RECONCILE = "reconcile"
    SOURCE_CHOICES = [
        (SOURCE_LOCAL, _("Local")),
        (SOURCE_API, _("API response")),
        (SOURCE_CALLBACK, _("Status callback")),
        (SOURCE_RECONCILE, _("Reconciliation")),
    ]

    message = models.ForeignKey(SmsMessage, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=32)
    detailed_status_code = models.IntegerField(null=True, blank=True)
    detailed_status = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=10, choices=SOURCE_CHOICES)
    applied = models.BooleanField(
        default=True, help_text=_("False when it arrived late and did not change the message.")
    )
    note = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("status event")
        verbose_name_plural = _("status events")
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["message", "created_at"], name="exotel_event_msg_created")]

    def __str__(self) -> str:
        return f"{self.status} ({self.get_source_display()})"


class ClickEvent(models.Model):
    """A click on a shortened, tracked URL, as reported by Exotel's click callback."""

    message = models.ForeignKey(
        SmsMessage, on_delete=models.CASCADE, null=True, blank=True, related_name="clicks"
    )
    sms_sid = models.CharField(max_length=64, blank=True)
    short_url = models.CharField(max_length=500, blank=True)
    long_url = models.TextField(blank=True)
    total_clicks = models.PositiveIntegerField(null=True, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    os_name = models.CharField(max_length=100, blank=True)
    device_name = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("click")
        verbose_name_plural = _("clicks")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sms_sid"], name="exotel_click_sid")]

    def __str__(self) -> str:
        return f"Click on {self.short_url or self.long_url}"


class IdempotencyRecord(models.Model):
    """The first answer to a REST request made with an ``Idempotency-Key`` header."""

    key = models.CharField(max_length=255)
    user_key = models.CharField(max_length=150, help_text=_("Who sent it (user pk or '')."))
    endpoint = models.CharField(max_length=100)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "user_key", "endpoint"], name="exotel_idempotency_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.key}"


class Suppression(models.Model):
    """A number the app must not send to: for every SMS type, or for promotional ones only.

    Written and read through :mod:`django_exotel_sms.suppression`, which normalises every
    number to E.164 first, so ``09876543210`` and ``+91 98765 43210`` are one entry.
    """

    REASON_OPT_OUT = "opt_out"
    REASON_DND = "dnd"
    REASON_BLACKLIST = "blacklist"
    REASON_INVALID_NUMBER = "invalid_number"
    REASON_CONSENT = "consent"
    REASON_MANUAL = "manual"
    REASON_CHOICES = [
        (REASON_OPT_OUT, _("Opted out")),
        (REASON_DND, _("DND (Do Not Disturb)")),
        (REASON_BLACKLIST, _("Blacklisted")),
        (REASON_INVALID_NUMBER, _("Invalid number")),
        (REASON_CONSENT, _("No consent")),
        (REASON_MANUAL, _("Manual")),
    ]
    SCOPE_ALL = "all"
    SCOPE_PROMOTIONAL = "promotional"
    SCOPE_CHOICES = [
        (SCOPE_ALL, _("All messages")),
        (SCOPE_PROMOTIONAL, _("Promotional messages only")),
    ]

    number = models.CharField(_("number"), max_length=20, help_text=_("In E.164: +919876543210."))
    reason = models.CharField(_("reason"), max_length=32, choices=REASON_CHOICES)
    scope = models.CharField(_("scope"), max_length=16, choices=SCOPE_CHOICES, default=SCOPE_ALL)
    source = models.CharField(
        _("source"), max_length=32, blank=True, help_text=_("Who added it: admin, api, callback...")
    )
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: never expires.")
    )

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["number", "scope"], name="exotel_suppression_unique")
        ]
        indexes = [models.Index(fields=["reason"], name="exotel_suppression_reason")]

    def __str__(self) -> str:
        return f"{self.number} ({self.get_reason_display()}, {self.get_scope_display()})"

    def clean(self) -> None:
        from . import phone
        from .conf import get_settings

        try:
            self.number = phone.normalize(self.number, get_settings().default_region)
        except phone.InvalidNumber as exc:
            raise ValidationError({"number": str(exc)}) from exc


class Campaign(models.Model):
    """Audit of one bulk composed in the admin: who, when, from which file, how many rows.

    ``confirm_token`` is unique: a replayed or double-submitted confirm finds the row the
    first one wrote and creates no second batch.
    """

    confirm_token = models.CharField(max_length=64, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=200, blank=True)
    template = models.ForeignKey(
        SmsTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaigns"
    )
    sender = models.CharField(_("sender"), max_length=40, blank=True)
    sms_type = models.CharField(_("SMS type"), max_length=24, choices=SMS_TYPE_CHOICES, blank=True)
    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    rows_total = models.PositiveIntegerField(_("rows read"), default=0)
    rows_valid = models.PositiveIntegerField(_("valid recipients"), default=0)
    rows_invalid = models.PositiveIntegerField(_("invalid rows"), default=0)
    rows_duplicate = models.PositiveIntegerField(_("duplicates removed"), default=0)
    estimated_units = models.PositiveIntegerField(_("estimated SMS units"), default=0)
    batch = models.OneToOneField(
        SmsBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="campaign"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("composed by"),
    )
    created_at = models.DateTimeField(_("confirmed at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at"]
        permissions = [("send_campaign", _("Can send a campaign from the admin"))]

    def __str__(self) -> str:
        return self.name or f"Campaign {self.pk}"


# Registered with the app here so migrations and the admin see them.
from .reports.models import DailyStat, RollupCursor, SmsReport  # noqa: E402, F401
