"""Finding messages again: stale claims, lost enqueues, and statuses whose callback never came.

Run periodically by the ``reconcile`` task (Celery beat) and on demand by the
``exotel_reconcile`` management command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from . import gate, logfields, ratelimit, scheduling, sending, status
from .backends import get_backend
from .conf import get_settings
from .exceptions import ExotelError
from .models import SmsMessage, StatusEvent
from .tracking import StatusReport, apply_report

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    reclaimed_pending: int = 0  # stale claims that never reached Exotel: sent again
    marked_uncertain: int = 0  # stale claims that may have reached Exotel
    checked: int = 0  # details calls made
    updated: int = 0  # messages moved forward by them
    not_found: int = 0
    errors: int = 0
    expired: int = 0  # pending messages past their expiry, closed as expired
    released: int = 0  # batches and messages whose scheduled or deferred rows became due
    batches_to_resume: frozenset[int] = frozenset()
    messages_to_resume: frozenset[int] = frozenset()


def recover_stale_claims() -> tuple[int, int]:
    """Claims older than CLAIM_TIMEOUT belong to a dead (or stalled) worker: hand them back.

    A stalled worker that wakes up sends only rows it can still mark as started under its
    token (``sending._mark_request_started``), so a row handed back here is sent by its new
    owner alone. Returns (back to pending, marked uncertain).
    """
    recovered = _recover_stale_claims()
    return recovered[0], recovered[1]


def _recover_stale_claims() -> tuple[int, int, set[int], set[int]]:
    """As above, plus the batches and single messages resent after a backoff (to resume)."""
    s = get_settings()
    now_ = timezone.now()
    cutoff = now_ - timedelta(seconds=s.claim_timeout)
    stale = SmsMessage.objects.filter(status=status.SUBMITTING, claimed_at__lt=cutoff)
    never_sent = stale.filter(request_started_at__isnull=True).update(
        status=status.PENDING, claim_token=None, next_attempt_at=None, updated_at=now_
    )
    maybe_sent = stale.filter(request_started_at__isnull=False)
    resent = 0
    batches: set[int] = set()
    singles: set[int] = set()
    if s.at_least_once:
        # Resent like a lost answer: after a backoff, and only while attempts remain. Not due
        # yet, pending_work would skip them: their tasks are resumed here, and wait it out.
        retry = maybe_sent.filter(attempts__lt=s.max_attempts)
        for pk, batch_id in retry.values_list("pk", "batch_id")[:10000]:
            if batch_id:
                batches.add(batch_id)
            else:
                singles.add(pk)
        for attempts in set(retry.values_list("attempts", flat=True)):
            delay = sending.backoff_delay(attempts, None)
            resent += retry.filter(attempts=attempts).update(
                status=status.PENDING,
                claim_token=None,
                request_started_at=None,
                next_attempt_at=now_ + timedelta(seconds=delay),
                error_message="Claim expired mid-request; resending (at-least-once).",
                updated_at=now_,
            )
    # The claim's token stays: a stalled worker's late answer still settles these rows.
    pks = list(maybe_sent.values_list("pk", flat=True)[:10000])
    text = (
        "Claim expired mid-request (worker lost or stalled past CLAIM_TIMEOUT); "
        "Exotel may have accepted it."
    )
    if s.at_least_once:
        text = f"Not resent: {s.max_attempts} attempts made (at-least-once). {text}"
    uncertain = SmsMessage.objects.filter(pk__in=pks, status=status.SUBMITTING).update(
        status=status.UNCERTAIN, error_message=text, updated_at=now_
    )
    StatusEvent.objects.bulk_create(
        [
            StatusEvent(
                message_id=pk,
                status=status.UNCERTAIN,
                source=StatusEvent.SOURCE_RECONCILE,
                note="stale claim after the request had started",
            )
            for pk in pks
        ]
    )
    return never_sent + resent, uncertain, batches, singles


def pending_work(min_age: float = 30.0) -> tuple[set[int], set[int]]:
    """Batches and single messages with pending rows that are due (e.g. a lost enqueue)."""
    now = timezone.now()
    due = gate.due(SmsMessage.objects.all(), now)
    # Skip the freshest rows: their task is most likely on its way.
    due = due.filter(created_at__lt=now - timedelta(seconds=min_age))
    batches = set(
        due.filter(batch__isnull=False).values_list("batch_id", flat=True).distinct()[:1000]
    )
    singles = set(due.filter(batch__isnull=True).values_list("pk", flat=True)[:1000])
    return {b for b in batches if b is not None}, singles


def refresh_message(message: SmsMessage, *, wait: bool = True) -> bool:
    """Ask Exotel about one message now; True when its status moved forward.

    ``wait=False`` (an HTTP request) raises ``ratelimit.RateLimited`` rather than wait for
    a request slot.
    """
    if not message.sid:
        return False
    if not wait:
        ratelimit.take(message.account, "get")
    elif not ratelimit.acquire(message.account, "get"):
        return False
    result = get_backend(message.account).get_message(message.sid)
    if result is None or not result.status:
        return False
    report = StatusReport(
        status=status.normalize_exotel_status(result.status) or message.status,
        detailed_status_code=result.detailed_status_code,
        detailed_status=result.detailed_status or "",
        sms_units=result.sms_units,
        price=result.price,
        date_sent=result.date_sent,
        payload={
            k: v for k, v in result.raw.items() if isinstance(v, (str, int, float, type(None)))
        },
    )
    return apply_report(message.pk, report, StatusEvent.SOURCE_RECONCILE)


def check_open_messages(limit: int | None = None) -> tuple[int, int, int, int]:
    """Details calls for messages not final after RECONCILE_AFTER seconds."""
    s = get_settings()
    now = timezone.now()
    qs = (
        SmsMessage.objects.filter(
            status__in=[status.QUEUED, status.SENDING, status.SUBMITTED, status.UNCERTAIN],
            sid__isnull=False,
            updated_at__lt=now - timedelta(seconds=s.reconcile_after),
            created_at__gt=now - timedelta(seconds=s.reconcile_max_age),
        )
        .order_by("updated_at")
        .only("pk", "sid", "account", "status", "batch_id", "to")
    )
    checked = updated = not_found = errors = 0
    for message in qs[: limit or s.reconcile_batch_size]:
        checked += 1
        try:
            if refresh_message(message):
                updated += 1
            else:
                # Touch it so the next run looks at others first.
                SmsMessage.objects.filter(pk=message.pk).update(updated_at=timezone.now())
        except ExotelError as exc:
            errors += 1
            logger.warning(
                "Could not refresh SMS %s: %s", message.pk, exc, extra=logfields.fields(message)
            )
            if getattr(exc, "throttled", False):
                break  # respect 40403: stop asking until the next run
    return checked, updated, not_found, errors


def run(limit: int | None = None, pending_min_age: float = 30.0) -> ReconcileReport:
    reclaimed, uncertain, resent_batches, resent_singles = _recover_stale_claims()
    checked, updated, not_found, errors = check_open_messages(limit)
    # Also what the release_due beat task does, so scheduled messages leave (and stale
    # ones expire) in a project that has not added that entry yet.
    now = timezone.now()
    expired = gate.expire_all(now)
    released = scheduling.release(now)
    batches, singles = pending_work(pending_min_age)
    batches |= resent_batches
    singles |= resent_singles
    batches |= released.batches
    singles |= released.messages
    return ReconcileReport(
        reclaimed_pending=reclaimed,
        marked_uncertain=uncertain,
        checked=checked,
        updated=updated,
        not_found=not_found,
        errors=errors,
        expired=expired,
        released=len(released.batches) + len(released.messages),
        batches_to_resume=frozenset(batches),
        messages_to_resume=frozenset(singles),
    )
