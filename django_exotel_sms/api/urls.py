"""``path("api/sms/", include("django_exotel_sms.api.urls"))`` in the project's urls."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver

from .routers import router

urlpatterns: list[URLPattern | URLResolver] = list(router.urls)
