"""The baseline for callback ingestion: same settings and middleware, a view that only
parses the form. Same URL shape as the real callbacks, so routing costs the same."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def bare_status(request: HttpRequest, token: str) -> HttpResponse:
    form = {key: request.POST.getlist(key)[-1] for key in request.POST}
    if not form.get("SmsSid"):
        return HttpResponse("SmsSid is required", status=400, content_type="text/plain")
    return HttpResponse("OK", content_type="text/plain")


urlpatterns = [path("exotel/status/<str:token>/", bare_status)]
