"""Callback URLs; include them under the path ``CALLBACK_BASE_URL`` points at (e.g. ``exotel/``)."""

from __future__ import annotations

from django.urls import path

from . import views
from .reports import health, metrics

app_name = "django_exotel_sms"

# Tokens look like "m12:1tAbCd:signature": ``str`` matches any text without "/".
urlpatterns = [
    path(
        "status/<str:token>/",
        metrics.counting_refused(views.status_callback),
        name="status-callback",
    ),
    path("click/<str:token>/", views.click_callback, name="click-callback"),
    path("health/", health.health, name="health"),
    path("metrics/", health.metrics_view, name="metrics"),
]
