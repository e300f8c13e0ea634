"""Prometheus metrics, when ``prometheus_client`` is installed (the ``metrics`` extra).

Counters and histograms live in prometheus_client's default registry, so a project that
already exposes one (e.g. with django-prometheus) gets them there; ``health.metrics_view``
exposes them too, plus gauges read from the database at scrape time (backlog, oldest pending age).
Several processes (gunicorn, Celery workers) need prometheus_client's multiprocess mode:
set ``PROMETHEUS_MULTIPROC_DIR`` for all of them.

Without prometheus_client every hook here is a no-op costing one attribute check.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Any

AVAILABLE = importlib.util.find_spec("prometheus_client") is not None
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self.status_changes = Counter(
            "exotel_sms_status_changes",
            "Messages reaching a status, by status and Exotel's detailed status code.",
            ["status", "code"],
        )
        self.http_requests = Counter(
            "exotel_sms_http_requests",
            "Requests to Exotel's API, by endpoint and HTTP status ('error': no response).",
            ["endpoint", "code"],
        )
        self.http_seconds = Histogram(
            "exotel_sms_http_request_seconds",
            "Latency of requests to Exotel's API.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
        )
        self.throttled = Counter(
            "exotel_sms_throttled", "Exotel answers 429 (too many requests).", ["endpoint"]
        )
        self.retries = Counter("exotel_sms_retries", "Messages put back to pending for a retry.")
        self.callbacks = Counter(
            "exotel_sms_callbacks",
            "Status callbacks by outcome: applied, duplicate (already there or later), "
            "unknown (status word), forged (refused token).",
            ["outcome"],
        )


_lock = threading.Lock()
_made: list[_Metrics | None] = []  # empty until the first use


def _metrics() -> _Metrics | None:
    """The metrics, registered once per process. Threads may first use them at the same
    time (a worker's request thread and its claim), and registering twice raises."""
    if not _made:
        with _lock:
            if not _made:
                _made.append(_Metrics() if AVAILABLE else None)
    return _made[0]


def endpoint_name(endpoint: str) -> str:
    """``Sms/send`` -> ``Sms/send``; ``SMS/Messages/<sid>`` -> ``SMS/Messages/{sid}``."""
    parts = endpoint.split("/")
    if len(parts) == 3 and parts[:2] == ["SMS", "Messages"]:
        return "SMS/Messages/{sid}"
    return endpoint


def http_request(endpoint: str, code: int | str, started: float) -> None:
    """One request to Exotel; ``started`` is its ``time.monotonic()`` start."""
    m = _metrics()
    if m is None:
        return
    name = endpoint_name(endpoint)
    m.http_requests.labels(name, str(code)).inc()
    m.http_seconds.labels(name).observe(time.monotonic() - started)
    if code == 429:
        m.throttled.labels(name).inc()


def retried(count: int = 1) -> None:
    m = _metrics()
    if m is not None and count:
        m.retries.inc(count)


def callback(outcome: str) -> None:
    m = _metrics()
    if m is not None:
        m.callbacks.labels(outcome).inc()


def status_changed(new_status: str, code: int | None) -> None:
    m = _metrics()
    if m is not None:
        m.status_changes.labels(new_status, "" if code is None else str(code)).inc()


def counting_refused(view: Any) -> Any:
    """Wrap a callback view: each 403 (a forged, tampered or expired token) is counted."""
    from functools import wraps

    @wraps(view)
    def wrapped(request: Any, *args: Any, **kwargs: Any) -> Any:
        response = view(request, *args, **kwargs)
        if response.status_code == 403:
            callback("forged")
        return response

    return wrapped


# -- signal receivers (connected in AppConfig.ready) -----------------------------------


def _on_status_changed(sender: Any, message: Any, new_status: str, **kwargs: Any) -> None:
    status_changed(new_status, getattr(message, "detailed_status_code", None))


def _on_status_event(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    from ..models import StatusEvent

    if not created or instance.source != StatusEvent.SOURCE_CALLBACK:
        return
    if instance.applied:
        callback("applied")
    elif (instance.note or "").startswith("not applied: unknown status"):
        callback("unknown")
    else:
        callback("duplicate")


def connect() -> None:
    if not AVAILABLE:
        return
    from django.db.models.signals import post_save

    from ..models import StatusEvent
    from ..signals import sms_status_changed

    sms_status_changed.connect(_on_status_changed, dispatch_uid="exotel_sms_metrics_status")
    post_save.connect(
        _on_status_event, sender=StatusEvent, dispatch_uid="exotel_sms_metrics_callbacks"
    )


# -- exposition ----------------------------------------------------------------------


def gauges() -> Any:
    from prometheus_client import CollectorRegistry, Gauge

    from .queries import stuck

    registry = CollectorRegistry()
    now = stuck()
    values = {
        "exotel_sms_backlog": ("Pending messages.", now.pending),
        "exotel_sms_deferred": ("Pending messages not due yet.", now.deferred),
        "exotel_sms_uncertain": ("Messages Exotel may or may not have.", now.uncertain),
        "exotel_sms_awaiting_callback": ("At Exotel, not final yet.", now.awaiting_callback),
        "exotel_sms_callbacks_overdue": (
            "At Exotel with no news for longer than RECONCILE_AFTER.",
            now.callbacks_overdue,
        ),
        "exotel_sms_oldest_pending_age_seconds": (
            "Age of the oldest pending message (0: none).",
            now.oldest_pending_age or 0.0,
        ),
    }
    for name, (text, value) in values.items():
        Gauge(name, text, registry=registry).set(value)
    return registry
