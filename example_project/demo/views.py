"""The demo's dashboard: this run's messages and batches with their statuses, every 2 s.

Staff only (log in as the demo's admin user): message texts may hold one-time codes.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from django_exotel_sms import status
from django_exotel_sms.models import SmsBatch, SmsMessage

from . import runs

RECENT_MESSAGES = 50
RECENT_BATCHES = 10


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    run = runs.from_query(request.GET.get("since")) or runs.current()
    messages = SmsMessage.objects.all()
    if run is not None and run.after_pk:
        messages = messages.filter(pk__gt=run.after_pk)
    counts = dict(messages.values_list("status").annotate(n=Count("pk")).order_by())
    totals = [(code, label, counts.get(code, 0)) for code, label in status.STATUS_CHOICES]
    batch_ids = messages.filter(batch__isnull=False).values("batch_id")
    batches = []
    for batch in SmsBatch.objects.filter(pk__in=batch_ids).select_related("template")[
        :RECENT_BATCHES
    ]:
        progress = batch.progress()
        batches.append(
            {
                "batch": batch,
                "progress": progress,
                "counts": sorted(progress["counts"].items(), key=lambda kv: status.rank(kv[0])),
            }
        )
    return render(
        request,
        "demo/dashboard.html",
        {
            "run": run if run is not None and run.after_pk else None,
            "totals": totals,
            "total": sum(counts.values()),
            "final": sum(n for s, n in counts.items() if status.is_terminal(s)),
            "batches": batches,
            "messages": messages.select_related("batch", "template")[:RECENT_MESSAGES],
            "time_zone": timezone.get_current_timezone_name(),
        },
    )
