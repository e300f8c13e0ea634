"""The daily roll-up the reports page reads, and the proxy model that puts it in the admin."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from ..models import SmsMessage

# Upper bounds (seconds) of the time-to-final histogram's buckets; the last is open-ended.
TTF_BOUNDS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400,
)  # fmt: skip


class DailyStat(models.Model):
    """Messages created on one day with one combination of dimensions and outcome.

    Rows are rebuilt per day from the message table (``rollup.refresh``), never
    incremented, so duplicated or reordered callbacks cannot make them drift.
    """

    day = models.DateField(_("day"))
    account = models.CharField(max_length=64)
    sms_type = models.CharField(max_length=24, blank=True)
    # Plain ids, not foreign keys: deleting a template or batch must not touch the roll-up.
    template_id = models.BigIntegerField(null=True, blank=True)
    sender = models.CharField(max_length=40, blank=True)
    batch_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16)
    detailed_status_code = models.IntegerField(null=True, blank=True)
    detailed_status = models.CharField(max_length=64, blank=True)

    messages = models.PositiveIntegerField(default=0)
    segments = models.PositiveIntegerField(default=0)
    billed = models.PositiveIntegerField(default=0, help_text=_("Messages with SMS units."))
    units = models.PositiveIntegerField(default=0)
    price = models.DecimalField(max_digits=18, decimal_places=6, default=0)
    # Predicted segments of messages Exotel has (or may have) but has not billed yet.
    unbilled_segments = models.PositiveIntegerField(default=0)
    # Counts per TTF_BOUNDS bucket (plus one open-ended) of sent_at - submitted_at.
    ttf_histogram = models.JSONField(default=list)

    class Meta:
        verbose_name = _("daily statistic")
        verbose_name_plural = _("daily statistics")
        indexes = [models.Index(fields=["day", "account"], name="exotel_dailystat_day")]
        permissions = [
            ("export_full_numbers", _("Can export full phone numbers")),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.status} x{self.messages}"


class RollupCursor(models.Model):
    """Where the last roll-up refresh started: the next one revisits days touched since."""

    name = models.CharField(max_length=32, unique=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.started_at}"


class SmsReport(SmsMessage):
    """No table: gives the reports page its entry in the app's admin index."""

    class Meta:
        proxy = True
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        default_permissions = ()
