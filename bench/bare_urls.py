"""The baseline for callback ingestion: a bare Django view that writes, as ours must.

Same settings, middleware and URL shape as the real callbacks (so routing costs the same);
it parses the form and does one UPDATE by Sid on the messages table -- what the plainest
Django view recording a status would do -- and nothing else: no token, no history, no
forward-only rule, no signals.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_exotel_sms.models import SmsMessage


@csrf_exempt
@require_POST
def bare_status(request: HttpRequest, token: str) -> HttpResponse:
    form = {key: request.POST.getlist(key)[-1] for key in request.POST}
    sid = form.get("SmsSid")
    if not sid:
        return HttpResponse("SmsSid is required", status=400, content_type="text/plain")
    SmsMessage.objects.filter(sid=sid).update(
        status=form.get("Status", "")[:16], updated_at=timezone.now()
    )
    return HttpResponse("OK", content_type="text/plain")


urlpatterns = [path("exotel/status/<str:token>/", bare_status)]
