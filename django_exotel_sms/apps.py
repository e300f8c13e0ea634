from __future__ import annotations

from django.apps import AppConfig


class ExotelSmsConfig(AppConfig):
    name = "django_exotel_sms"
    label = "django_exotel_sms"
    verbose_name = "Exotel SMS"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, checks_deployment  # noqa: F401  (registers the system checks)
        from .reports import metrics

        metrics.connect()  # Prometheus counters, when prometheus_client is installed
