"""Full round trip over real HTTP: send to the sandbox, which calls back a live server.

The live server runs the test project's URLs (``tests.urls``: ``exotel/`` includes the
app's callback URLs), and ``CALLBACK_BASE_URL`` points at it, so the signed URLs the app
builds are the ones the sandbox posts to.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.db import connections

from django_exotel_sms import status
from django_exotel_sms.models import SmsBatch, SmsMessage, StatusEvent
from django_exotel_sms.signals import sms_delivered, sms_failed

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERED = [f"+9198765{i:05d}" for i in range(120)]
DND = [f"+9199999{i:05d}" for i in range(25)]  # the sandbox rule below makes these DND
EXPIRED = [f"+9198888{i:05d}" for i in range(4)]  # failed / 23050
INVALID = "+919777700000"  # refused at API time: a 207 entry, never a callback
_OTHERS = DND + EXPIRED
# Mixed outcomes in each request of 100.
RECIPIENTS = [n for pair in zip(DELIVERED, _OTHERS) for n in pair]
RECIPIENTS += DELIVERED[len(_OTHERS) :] + [INVALID]
EXPECTED = {
    **{n: (status.SENT, 20005) for n in DELIVERED},
    **{n: (status.FAILED_DND, 23005) for n in DND},
    **{n: (status.FAILED, 23050) for n in EXPIRED},
    INVALID: (status.REJECTED, 23010),
}
SINGLE = "+919876599999"
TIMEOUT = 60.0


@pytest.fixture
def public(live_server, sandbox, settings) -> Iterator[contextlib.AbstractContextManager[object]]:
    """The app reachable at CALLBACK_BASE_URL; yields a lock to hold while using the DB.

    With an in-memory SQLite database the live server's threads share the test's one
    connection, so requests and the test take turns on it; other databases don't need to.
    """
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "CALLBACK_BASE_URL": f"{live_server.url}/exotel/"}
    sandbox.add_rule("+9199999*", "dnd")
    sandbox.add_rule("+9198888*", "failed:23050")
    sandbox.add_rule(INVALID, "invalid")
    sandbox.configure(callback_timeout=30.0)
    shared = any(
        c.vendor == "sqlite" and c.is_in_memory_db() for c in connections.all(initialized_only=True)
    )
    lock: contextlib.AbstractContextManager[object] = (
        threading.RLock() if shared else contextlib.nullcontext()
    )
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def serialized(environ, start_response):
        def close_after(status, headers, exc_info=None):
            # Without a length Django's server closes the connection after the answer, so
            # no request thread outlives the test on one of the sandbox's idle keep-alive
            # connections (it would touch the shared connection after the session ends).
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            return start_response(status, headers, exc_info)

        with lock:
            return app(environ, close_after)

    httpd.set_app(serialized)
    try:
        yield lock
    finally:
        httpd.set_app(app)


@pytest.fixture
def terminal_signals() -> Iterator[Counter[tuple[str, int]]]:
    seen: Counter[tuple[str, int]] = Counter()
    guard = threading.Lock()

    def delivered(sender, message, previous_status, **kwargs):
        with guard:
            seen["delivered", message.pk] += 1

    def failed(sender, message, previous_status, **kwargs):
        with guard:
            seen["failed", message.pk] += 1

    sms_delivered.connect(delivered, weak=False)
    sms_failed.connect(failed, weak=False)
    yield seen
    sms_delivered.disconnect(delivered)
    sms_failed.disconnect(failed)


def wait_until_final(lock, count: int) -> None:
    """Poll the database until every message is final (or fail after TIMEOUT)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        with lock:
            final = SmsMessage.objects.final().count()
            open_ = list(SmsMessage.objects.not_final().values_list("to", "status")[:5])
        if final == count and not open_:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{count - final} message(s) never became final, e.g. {open_}")
        time.sleep(0.05)


def send_all(lock) -> tuple[SmsMessage, SmsBatch]:
    with lock:
        single = SmsMessage.objects.send(
            SINGLE, "Your OTP is 4321", custom_field="otp-1", send_async=False
        )
        batch = SmsMessage.objects.send_bulk(to=RECIPIENTS, body="Sale today", send_async=False)
    return single, batch


def test_round_trip_statuses_match_the_sandbox(public, sandbox, terminal_signals):
    assert len(RECIPIENTS) == 150 and len(set(RECIPIENTS)) == 150
    single, batch = send_all(public)
    wait_until_final(public, 151)

    # The sandbox saw one single send and two bulk requests of at most 100 numbers.
    sends = [r for r in sandbox.requests if r.method == "POST" and "/Sms/" in r.path]
    assert [len(r.recipients) for r in sends] == [1, 100, 50]
    assert max(len(r.recipients) for r in sandbox.requests) <= 100
    assert all(r.status in (200, 207) for r in sends)
    assert all(n == 1 for n in sandbox.recipient_counts().values())

    with public:
        single.refresh_from_db()
        assert (single.status, single.detailed_status_code) == (status.SENT, 20005)
        assert single.sent_at is not None and single.sms_units == 1
        event = single.events.get(source=StatusEvent.SOURCE_CALLBACK)
        assert event.payload["CustomField"] == "otp-1"
        rows = list(batch.messages.values_list("pk", "to", "sid", "status", "detailed_status_code"))
    assert len(rows) == 150
    for pk, to, sid, st, code in rows:
        assert (st, code) == EXPECTED[to], to
        if to == INVALID:
            assert sid is None
            continue
        remote = sandbox.message(sid)
        assert remote is not None and remote.number == to
        assert (remote.status, remote.detailed_status_code) == (st, code)

    # Every terminal callback was answered 200; none were refused or crashed the view.
    assert sandbox.wait_for_callbacks(TIMEOUT)
    attempts = sandbox.callbacks
    assert len(attempts) == 150  # 149 batch messages + the single one
    assert {a.status_code for a in attempts} == {200}
    with public:
        counts = batch.progress()["counts"]
    assert counts == {status.SENT: 120, status.FAILED_DND: 25, status.FAILED: 4, status.REJECTED: 1}
    assert sum(terminal_signals.values()) == 151
    assert set(terminal_signals.values()) == {1}


def test_round_trip_with_duplicate_and_reordered_callbacks(public, sandbox, terminal_signals):
    sandbox.configure(callback_duplicate_rate=1.0, callback_reorder=1.0)
    single, batch = send_all(public)
    wait_until_final(public, 151)
    assert sandbox.wait_for_callbacks(TIMEOUT)  # the duplicates and stale ones too

    kinds = Counter(a.kind for a in sandbox.callbacks)
    assert kinds == {"terminal": 150, "duplicate": 150, "stale": 150}
    assert {a.status_code for a in sandbox.callbacks} == {200}
    with public:
        rows = list(batch.messages.values_list("pk", "to", "status", "detailed_status_code"))
        single.refresh_from_db()
        history = Counter(
            StatusEvent.objects.filter(source=StatusEvent.SOURCE_CALLBACK).values_list(
                "message_id", "applied"
            )
        )
    assert single.status == status.SENT
    for pk, to, st, code in rows:
        assert (st, code) == EXPECTED[to], to
        if to != INVALID:
            # terminal applied once; the duplicate and the late "submitted" kept, not applied
            assert (history[pk, True], history[pk, False]) == (1, 2)
    assert history[single.pk, True] == 1 and history[single.pk, False] == 2
    # Each message's terminal signal fired exactly once, whatever arrived after it.
    assert sum(terminal_signals.values()) == 151
    assert set(terminal_signals.values()) == {1}
