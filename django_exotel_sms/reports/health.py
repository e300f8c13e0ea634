"""``GET <callback prefix>/health/``: JSON for load balancers and uptime checkers; and
``metrics/``, the Prometheus exposition.

Allowed with ``Authorization: Bearer <EXOTEL_SMS['HEALTH_TOKEN']>`` (never in the URL) or
for a logged-in staff user. 200 when the database and the Celery broker answer, else 503;
the backlog figures are for the checker's own thresholds.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import connections, router
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..conf import get_settings
from ..models import SmsMessage
from . import metrics, queries

logger = logging.getLogger(__name__)

BROKER_TIMEOUT = 3.0


def _token_ok(request: HttpRequest) -> bool:
    expected = get_settings().health_token
    if not expected:
        return False
    scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_compare(given.strip(), str(expected))


def database_ok() -> bool:
    try:
        with connections[router.db_for_read(SmsMessage)].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        logger.exception("django_exotel_sms health: the database does not answer")
        return False
    return True


def broker_ok() -> bool | None:
    """None when tasks run eagerly (no broker to reach)."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        return None
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_TIMEOUT)
    except Exception as exc:  # kombu raises transport-specific errors
        # Only the type: a broker URL may carry credentials.
        logger.warning(
            "django_exotel_sms health: the broker does not answer (%s)", type(exc).__name__
        )
        return False
    return True


def snapshot() -> dict[str, Any]:
    database = database_ok()
    broker = broker_ok()
    report: dict[str, Any] = {
        "ok": database and broker is not False,
        "database": database,
        "broker": "eager" if broker is None else broker,
    }
    if database:
        stuck = queries.stuck()
        age = stuck.oldest_pending_age
        minutes = stuck.minutes_since_last_callback
        report.update(
            backlog=stuck.pending,
            deferred=stuck.deferred,
            oldest_pending_age_seconds=None if age is None else round(age, 1),
            submitting=stuck.submitting,
            uncertain=stuck.uncertain,
            awaiting_callback=stuck.awaiting_callback,
            callbacks_overdue=stuck.callbacks_overdue,
            minutes_since_last_callback=None if minutes is None else round(minutes, 1),
        )
    return report


def allowed(request: HttpRequest) -> bool:
    """The bearer ``HEALTH_TOKEN``, or a logged-in staff user."""
    user = getattr(request, "user", None)
    return _token_ok(request) or bool(user is not None and user.is_active and user.is_staff)


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    if not allowed(request):
        return JsonResponse({"detail": "A health token or a staff login is needed."}, status=403)
    report = snapshot()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition; allowed like the health view (bearer HEALTH_TOKEN or staff)."""
    if not allowed(request):
        return JsonResponse({"detail": "A health token or a staff login is needed."}, status=403)
    if not metrics.AVAILABLE:
        return HttpResponse(
            "prometheus_client is not installed (pip install django-exotel-sms[metrics]).",
            status=501,
            content_type="text/plain",
        )
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    registry: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    body = generate_latest(registry) + generate_latest(metrics.gauges())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
