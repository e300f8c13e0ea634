"""Celery tasks: thin wrappers over ``sending`` and ``reconcile``; arguments are primary keys.

``acks_late`` is safe here because delivery is idempotent: a redelivered task can only
claim rows that are still pending. ``reject_on_worker_lost`` puts a task back on the
queue when its worker is killed; stale claims it left are recovered by ``reconcile``.
Retry countdowns are capped by ``RETRY_BACKOFF_MAX`` (default 300 s), which must stay
below the Redis transport's ``visibility_timeout`` (default 3600 s). A send task that meets
a transient database error is retried by Celery (``SEND_RETRY``: at most 5 times, backoff
capped at 60 s). Scheduled and window-deferred messages never wait in a countdown:
``release_due`` (beat, every ``RELEASE_INTERVAL`` seconds) wakes a sender once the database
says they are due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval

from . import reconcile as reconcile_mod
from . import scheduling, sending
from .conf import get_settings
from .db.transient import is_transient
from .dbretry import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

BATCH_TIME_BUDGET = 240.0  # seconds one send_batch run works before handing over
# A transient database error (a lock, a restart) retries the task with backoff instead of
# leaving its rows to the next reconcile: up to 2, 4, 8, 16, 32 s, jittered. The same rule
# as every other write (``db.transient.is_transient``): a missing table or column is not
# retried, it surfaces at once.
SEND_RETRY = {"max_retries": 5, "retry_backoff": 2, "retry_backoff_max": 60}


def _retrying(task: Any, work: Callable[[], sending.Outcome]) -> sending.Outcome:
    try:
        return work()
    except TRANSIENT_ERRORS as exc:
        if not is_transient(exc):
            raise
        countdown = get_exponential_backoff_interval(
            factor=SEND_RETRY["retry_backoff"],
            retries=task.request.retries,
            maximum=SEND_RETRY["retry_backoff_max"],
            full_jitter=True,
        )
        raise task.retry(exc=exc, countdown=countdown) from exc


def _options() -> dict[str, Any]:
    queue = get_settings().task_queue
    return {"queue": queue} if queue else {}


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=SEND_RETRY["max_retries"],
)
def send_message(self: Any, message_id: int) -> dict[str, Any]:
    outcome = _retrying(self, lambda: sending.deliver_message(message_id))
    if outcome.retry_after is not None:
        send_message.apply_async((message_id,), countdown=outcome.retry_after, **_options())
    return outcome.__dict__


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=SEND_RETRY["max_retries"],
)
def send_batch(self: Any, batch_id: int) -> dict[str, Any]:
    outcome = _retrying(
        self, lambda: sending.deliver_batch(batch_id, time_budget=BATCH_TIME_BUDGET)
    )
    if outcome.more:
        send_batch.apply_async((batch_id,), **_options())
    elif outcome.retry_after is not None:
        send_batch.apply_async((batch_id,), countdown=outcome.retry_after, **_options())
    return outcome.__dict__


@shared_task(ignore_result=True)
def refresh_message(message_id: int) -> bool:
    from .models import SmsMessage

    message = SmsMessage.objects.filter(pk=message_id).first()
    return bool(message and reconcile_mod.refresh_message(message))


@shared_task(ignore_result=True)
def release_due() -> dict[str, int]:
    """Periodic (every RELEASE_INTERVAL s): wake senders for scheduled or deferred rows now due.

    One indexed query when nothing is due; one task per batch and per single message
    that became due, so broker use follows what leaves now, not what is scheduled.
    """
    released = scheduling.release()
    parallel = get_settings().batch_parallelism  # as many runs as a batch sent at once gets
    for batch_id in sorted(released.batches):
        for _ in range(parallel):
            send_batch.apply_async((batch_id,), **_options())
    for message_id in sorted(released.messages):
        send_message.apply_async((message_id,), **_options())
    return {"batches": len(released.batches), "messages": len(released.messages)}


@shared_task(ignore_result=True)
def reconcile(limit: int | None = None) -> dict[str, Any]:
    """Periodic: recover stale claims, resume lost work, ask Exotel about open messages."""
    report = reconcile_mod.run(limit)
    for batch_id in report.batches_to_resume:
        send_batch.apply_async((batch_id,), **_options())
    for message_id in report.messages_to_resume:
        send_message.apply_async((message_id,), **_options())
    logger.info("django_exotel_sms reconcile: %s", report)
    return {
        "reclaimed_pending": report.reclaimed_pending,
        "marked_uncertain": report.marked_uncertain,
        "checked": report.checked,
        "updated": report.updated,
        "errors": report.errors,
        "expired": report.expired,
        "released": report.released,
        "resumed_batches": len(report.batches_to_resume),
        "resumed_messages": len(report.messages_to_resume),
    }


@shared_task(ignore_result=True)
def rollup(full: bool = False) -> dict[str, Any]:
    """Periodic (e.g. every minute): rebuild the reports' daily roll-up for days touched since."""
    from .reports import rollup as rollup_mod

    report = rollup_mod.refresh(full=full)
    return {"days": [day.isoformat() for day in report.days], "rows": report.rows}
