"""Prometheus metrics (the ``metrics`` extra): counters from the hooks, and the exposition."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from django_exotel_sms import callbacks
from django_exotel_sms.models import SmsMessage

prometheus_client = pytest.importorskip("prometheus_client")

from django_exotel_sms.reports import metrics  # noqa: E402

pytestmark = pytest.mark.django_db


def value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_to_exotel_are_counted_with_latency(sandbox, django_capture_on_commit_callbacks):
    before = value("exotel_sms_http_requests_total", endpoint="Sms/send", code="200")
    timed = value("exotel_sms_http_request_seconds_count", endpoint="Sms/send")
    with django_capture_on_commit_callbacks(execute=True):
        SmsMessage.objects.send("+919876543210", "Your OTP is 1234", send_async=False)
    assert value("exotel_sms_http_requests_total", endpoint="Sms/send", code="200") == before + 1
    assert value("exotel_sms_http_request_seconds_count", endpoint="Sms/send") == timed + 1


def test_retries_are_counted(sandbox):
    from django_exotel_sms import sending

    before = value("exotel_sms_retries_total")
    sandbox.configure(throttle_rate=1.0, retry_after=0)
    batch = SmsMessage.objects.send_bulk(to=["+919876500301", "+919876500302"], body="Hi")
    sending.deliver_batch(batch.pk)
    assert value("exotel_sms_retries_total") == before + 2


def test_throttling_is_counted():
    before = value("exotel_sms_throttled_total", endpoint="SMS/Messages/{sid}")
    metrics.http_request("SMS/Messages/abc123", 429, time.monotonic())
    assert value("exotel_sms_throttled_total", endpoint="SMS/Messages/{sid}") == before + 1


def test_status_changes_and_callbacks_by_outcome(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = SmsMessage.objects.send("+919876543210", "Your OTP is 1234", send_async=False)
    message.refresh_from_db()
    path = reverse(
        "django_exotel_sms:status-callback",
        args=[callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)],
    )
    form = {"SmsSid": message.sid, "Status": "sent", "DetailedStatusCode": "20005"}
    sent = value("exotel_sms_status_changes_total", status="sent", code="20005")
    applied = value("exotel_sms_callbacks_total", outcome="applied")
    duplicate = value("exotel_sms_callbacks_total", outcome="duplicate")
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(path, form).status_code == 200
        assert client.post(path, form).status_code == 200
    assert value("exotel_sms_callbacks_total", outcome="applied") == applied + 1
    assert value("exotel_sms_callbacks_total", outcome="duplicate") == duplicate + 1
    assert value("exotel_sms_status_changes_total", status="sent", code="20005") == sent + 1


def test_forged_callbacks_are_counted(client):
    message = SmsMessage.objects.create(to="+919876543210", body="x", sid="sid-f", status="queued")
    token = callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    before = value("exotel_sms_callbacks_total", outcome="forged")
    path = reverse("django_exotel_sms:status-callback", args=[forged])
    assert client.post(path, {"SmsSid": "sid-f", "Status": "sent"}).status_code == 403
    assert value("exotel_sms_callbacks_total", outcome="forged") == before + 1


def test_exposition_needs_the_token_and_has_the_gauges(client, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "HEALTH_TOKEN": "tok"}
    SmsMessage.objects.create(to="+919876500001", body="x")
    assert client.get(reverse("django_exotel_sms:metrics")).status_code == 403
    response = client.get(reverse("django_exotel_sms:metrics"), HTTP_AUTHORIZATION="Bearer tok")
    assert response.status_code == 200
    text = response.content.decode()
    assert "exotel_sms_backlog 1.0" in text
    assert "exotel_sms_oldest_pending_age_seconds" in text
    assert "exotel_sms_http_requests_total" in text or "exotel_sms_http_requests" in text


def test_metrics_are_registered_once_when_threads_first_use_them_together(monkeypatch):
    """A worker's request thread and its claim may touch the metrics first at the same time;
    registering twice raised DuplicateTimeseries and lost the chunk's answer."""
    import threading

    made: list[int] = []

    class Slow:
        def __init__(self) -> None:
            made.append(1)
            time.sleep(0.05)  # widen the window in which a second thread could start one

    monkeypatch.setattr(metrics, "_Metrics", Slow)
    monkeypatch.setattr(metrics, "_made", [])
    start = threading.Barrier(8)
    seen: list[object] = []

    def first_use() -> None:
        start.wait()
        seen.append(metrics._metrics())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert len(seen) == 8 and len({id(m) for m in seen}) == 1
