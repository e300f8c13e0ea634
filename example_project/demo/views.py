"""The demo's dashboard: recent messages and batches with their statuses, refreshed every 2 s.

Open without logging in: it shows numbers, texts and statuses of demo sends, never a secret.
"""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_exotel_sms import status
from django_exotel_sms.models import SmsBatch, SmsMessage

RECENT_MESSAGES = 50
RECENT_BATCHES = 10


def dashboard(request: HttpRequest) -> HttpResponse:
    counts = dict(SmsMessage.objects.values_list("status").annotate(n=Count("pk")).order_by())
    totals = [(code, label, counts.get(code, 0)) for code, label in status.STATUS_CHOICES]
    batches = []
    for batch in SmsBatch.objects.select_related("template")[:RECENT_BATCHES]:
        progress = batch.progress()
        batches.append(
            {
                "batch": batch,
                "progress": progress,
                "counts": sorted(progress["counts"].items(), key=lambda kv: status.rank(kv[0])),
            }
        )
    messages = SmsMessage.objects.select_related("batch", "template")[:RECENT_MESSAGES]
    return render(
        request,
        "demo/dashboard.html",
        {
            "totals": totals,
            "total": sum(counts.values()),
            "final": sum(n for s, n in counts.items() if status.is_terminal(s)),
            "batches": batches,
            "messages": messages,
        },
    )
