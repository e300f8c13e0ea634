"""The send gate: whether a pending row may leave now. One rule, taken in two places.

* at compose time (``managers``), to give the caller a clear answer before saving;
* at claim time (``sending._claim``), set-based and inside the claim's own queries, so a
  change made in between also holds: a suppression added, a window closing, an expiry
  passing, a cancellation.

A row the gate only delays stays ``pending`` with a visible ``next_attempt_at`` ("not
before"). A row it refuses for good gets a local final status (``suppressed``,
``expired`` or ``cancelled``) with its ``status_reason``, a history entry and its
signals, once, through :func:`close`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import scheduling, signals, status
from .models import SmsMessage, StatusEvent


def _db() -> str:
    return router.db_for_write(SmsMessage)


def due(qs: QuerySet[SmsMessage], now: datetime) -> QuerySet[SmsMessage]:
    """The rows of ``qs`` that may be claimed now.

    Pending, not-before passed, not expired, and not governed by a sending window that
    is closed at ``now``: a batch still sending at the close stops claiming there.
    """
    qs = qs.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        status=status.PENDING,
    )
    held = scheduling.closed(now)
    return qs if held is None else qs.exclude(held)


def expire(qs: QuerySet[SmsMessage], now: datetime, limit: int = 10_000) -> int:
    """Settle the pending rows of ``qs`` the claim skipped; returns how many expired.

    Set-based, never one by one: expired rows are closed as ``expired`` (``limit`` per
    call), and rows a closed window holds get its next opening as their visible
    "not before".
    """
    scheduling.defer(qs, now)
    return _close_expired(qs, now, limit)


def _close_expired(qs: QuerySet[SmsMessage], now: datetime, limit: int) -> int:
    pks = list(
        qs.filter(status=status.PENDING, expires_at__lte=now)
        .order_by()
        .values_list("pk", flat=True)[:limit]
    )
    if not pks:
        return 0
    return len(close(dict.fromkeys(pks, "expired"), status.EXPIRED, note="expired before sending"))


def expire_all(now: datetime, limit: int = 10_000, rounds: int = 100) -> int:
    """Expire every stale pending row (reconciliation): ``limit`` rows per round."""
    qs = SmsMessage.objects.all()
    scheduling.defer(qs, now)
    total = 0
    for _ in range(rounds):
        n = _close_expired(qs, now, limit)
        total += n
        if n < limit:
            break
    return total


def claimed_fields(qs: QuerySet[SmsMessage], fields: Sequence[str], now: datetime) -> QuerySet[Any]:
    """``qs`` reading ``fields`` plus what :func:`screen` needs (``.values`` queryset)."""
    from . import suppression

    values: QuerySet[Any] = suppression.claimed_fields(qs, now).values(
        *fields, *suppression.CLAIM_FIELDS
    )
    return values


def claimed_rows(
    qs: QuerySet[SmsMessage], fields: Sequence[str], now: datetime
) -> list[dict[str, Any]]:
    """The claimed rows' ``fields``, plus what :func:`screen` needs, in one query."""
    return list(claimed_fields(qs, fields, now))


def screen(rows: Sequence[Mapping[str, Any]], now: datetime) -> dict[int, str]:
    """Claimed rows the gate refuses for good, as ``{pk: reason}`` (to become ``suppressed``).

    The suppression list and the allow-list, read again at claim time so an entry added
    after the message was saved still holds. The rows come from :func:`claimed_rows`,
    which read the list in the claim's own query: no query per chunk, none per number.
    """
    from . import suppression

    return suppression.screen(rows, now)


def close(
    reasons: Mapping[int, str],
    new_status: str,
    *,
    source: str = StatusEvent.SOURCE_LOCAL,
    note: str = "",
    from_statuses: Iterable[str] = (status.PENDING,),
    claim_token: uuid.UUID | None = None,
) -> list[int]:
    """Move rows to a local final status, each with its reason; returns the pks moved.

    Only rows still in ``from_statuses`` (and, when given, still under ``claim_token``)
    move, so a row a worker claimed meanwhile is never closed, and a row closed
    meanwhile is never closed twice: its history and signals are written once.
    """
    if not reasons:
        return []
    assert status.is_not_sent(new_status), new_status
    db = _db()
    now = timezone.now()
    from_statuses = list(from_statuses)
    with transaction.atomic(using=db):
        lookup = SmsMessage.objects.using(db).filter(pk__in=list(reasons), status__in=from_statuses)
        if claim_token is not None:
            lookup = lookup.filter(claim_token=claim_token)
        # A row another transaction has locked is being claimed: it is on its way, not ours
        # to close (and waiting on it could deadlock with the claim on InnoDB).
        skip = connections[db].features.has_select_for_update_skip_locked
        owned = dict(lookup.select_for_update(skip_locked=skip).values_list("pk", "status"))
        if not owned:
            return []
        by_reason: dict[str, list[int]] = {}
        for pk in owned:
            by_reason.setdefault(reasons[pk][:32], []).append(pk)
        for reason, pks in by_reason.items():
            SmsMessage.objects.using(db).filter(pk__in=pks, status__in=from_statuses).update(
                status=new_status,
                status_reason=reason,
                claim_token=None,
                next_attempt_at=None,
                updated_at=now,
            )
        StatusEvent.objects.using(db).bulk_create(
            [
                StatusEvent(
                    message_id=pk,
                    status=new_status,
                    source=source,
                    note=(f"{note}: {reasons[pk]}" if note else reasons[pk])[:255],
                )
                for pk in owned
            ]
        )
        signals.notify_after_commit(
            ((pk, previous, new_status, source) for pk, previous in owned.items()), using=db
        )
    return list(owned)
