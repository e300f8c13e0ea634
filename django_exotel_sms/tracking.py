"""The monotonic update: what callbacks and reconciliation learn, applied forward-only.

Each report becomes a ``StatusEvent``; it changes the message only when it moves the
status forward (``status.can_advance``). The change is one conditional UPDATE, so of
two reports racing to a terminal status exactly one wins, and its signals fire once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings as django_settings
from django.db import router, transaction
from django.utils import timezone

from . import signals, status, suppression
from .callbacks import MESSAGE, CallbackScope
from .conf import get_settings
from .db import apply_pg
from .models import SmsMessage, StatusEvent
from .reports import metrics

logger = logging.getLogger(__name__)

# A callback that could not name its message (several Sid-less candidates in scope): kept
# as unapplied history on each candidate until one of them learns the posted Sid.
HELD_NOTE = "held: ambiguous"
RELEASED_NOTE = "held report, applied once this message's Sid was known"
NOT_THIS_NOTE = "held report, not this message's: it got another Sid"


@dataclass(frozen=True)
class StatusReport:
    status: str
    detailed_status_code: int | None = None
    detailed_status: str = ""
    sms_units: int | None = None
    price: Decimal | None = None
    date_sent: datetime | None = None
    sid: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


_KNOWN = frozenset(s for s, _ in status.STATUS_CHOICES)


def _behind(new: str) -> list[str]:
    """Statuses a message may be in for ``new`` to be a forward move (none: unknown word)."""
    if new not in _KNOWN:
        return []  # an unknown word (e.g. from the details API) is kept in history only
    return [s for s, _ in status.STATUS_CHOICES if status.can_advance(s, new)]


def apply_report(message_pk: int, report: StatusReport, source: str) -> bool:
    """Record ``report`` for a message; True when it moved the status forward.

    On PostgreSQL one statement (``db/apply_pg.py``); elsewhere, and for the reports only
    the portable path handles, a locked read, a conditional UPDATE and an INSERT.
    """
    db = router.db_for_write(SmsMessage)
    behind = _behind(report.status)
    if behind and not report.sid and apply_pg.supported(db):
        return _apply_one_statement(db, message_pk, report, source, behind)
    return _apply_portable(db, message_pk, report, source)


# What apply_by_sid did: the Sid is another message's or batch's (nothing written), or the
# report was recorded (applied or not).
OUT_OF_SCOPE = "out of scope"
RECORDED = "recorded"


def apply_by_sid(scope: CallbackScope, sid: str, report: StatusReport, source: str) -> str | None:
    """Find the message by Sid within the token's scope and record the report, at once.

    PostgreSQL only, one statement; None when this path does not apply or no message has
    the Sid: the caller then locates the message itself (adoption) and calls apply_report.
    """
    db = router.db_for_write(SmsMessage)
    behind = _behind(report.status)
    stamp = scope.stamped_at()
    if (
        not behind
        or report.sid
        or stamp is None  # a legacy token: the portable scope check
        or not django_settings.USE_TZ  # naive stored times: compared in Python
        or router.db_for_read(SmsMessage) != db
        or not apply_pg.supported(db)
    ):
        return None
    learns = _learns(report)
    with transaction.atomic(using=db) if learns else contextlib.nullcontext():
        located = apply_pg.apply_by_sid(
            db,
            sid,
            by_message=scope.kind == MESSAGE,
            scope_pk=scope.pk,
            stamp=stamp,
            **_values(report, source, behind),
        )
        if located.pk is None:
            return None
        if located.applied is None:
            return OUT_OF_SCOPE
        _recorded(db, located.pk, report, source, located.applied, learns)
    return RECORDED


def _learns(report: StatusReport) -> bool:
    # A failure may put the number on the suppression list: that belongs in the same
    # transaction. Otherwise the one statement is its own transaction (or joins the caller's).
    return (
        status.is_failure(report.status)
        and report.detailed_status_code in get_settings().suppression_codes
    )


def _values(report: StatusReport, source: str, behind: list[str]) -> dict[str, Any]:
    return {
        "status": report.status,
        "behind": behind,
        "code": report.detailed_status_code,
        "detail": report.detailed_status[:64],
        "units": report.sms_units,
        "price": report.price,
        "sent": report.date_sent,
        "source": source,
        "payload": report.payload or None,
        "now": timezone.now(),
    }


def _recorded(
    db: str,
    message_pk: int,
    report: StatusReport,
    source: str,
    done: apply_pg.Applied,
    learns: bool,
) -> None:
    """What follows the one statement: metrics, suppression, signals after commit."""
    if source == StatusEvent.SOURCE_CALLBACK:
        # The ORM's post_save counts callbacks; this INSERT is not the ORM's.
        metrics.callback("applied" if done.changed else "duplicate")
    if done.changed and learns:
        suppression.learn(done.number, report.detailed_status_code, source=source, using=db)
    if done.changed:
        assert done.message is not None
        signals.notify_after_commit(
            [(message_pk, done.previous, report.status, source)],
            using=db,
            messages={message_pk: done.message},
        )


def _apply_one_statement(
    db: str, message_pk: int, report: StatusReport, source: str, behind: list[str]
) -> bool:
    learns = _learns(report)
    with transaction.atomic(using=db) if learns else contextlib.nullcontext():
        done = apply_pg.apply(db, message_pk, **_values(report, source, behind))
        if done is None:
            return False
        _recorded(db, message_pk, report, source, done, learns)
    return done.changed


def _apply_portable(db: str, message_pk: int, report: StatusReport, source: str) -> bool:
    now = timezone.now()
    with transaction.atomic(using=db):
        current = (
            SmsMessage.objects.using(db)
            .select_for_update()
            .filter(pk=message_pk)
            .values_list("status", "sid", "to")
            .first()
        )
        if current is None:
            return False
        previous, sid, number = current
        updates: dict[str, Any] = {
            "status": report.status,
            "detailed_status_code": report.detailed_status_code,
            "detailed_status": report.detailed_status[:64],
            # Exotel's word supersedes a local explanation ("may have accepted it"...).
            "error_code": None,
            "error_message": "",
            "updated_at": now,
        }
        if report.sms_units is not None:
            updates["sms_units"] = report.sms_units
        if report.price is not None:
            updates["price"] = report.price
        if report.date_sent is not None:
            updates["sent_at"] = report.date_sent
        if report.sid and not sid:
            # A callback for a message whose send answer was lost tells us its Sid.
            updates["sid"] = report.sid
            updates["submitted_at"] = now
        changed = bool(
            SmsMessage.objects.using(db)
            .filter(pk=message_pk, status__in=_behind(report.status))
            .update(**updates)
        )
        if not changed and report.sid and not sid:
            SmsMessage.objects.using(db).filter(pk=message_pk, sid__isnull=True).update(
                sid=report.sid
            )
        StatusEvent.objects.using(db).create(
            message_id=message_pk,
            status=report.status,
            detailed_status_code=report.detailed_status_code,
            detailed_status=report.detailed_status[:64],
            source=source,
            applied=changed,
            payload=report.payload or None,
            note=""
            if changed
            else "not applied: unknown status"
            if report.status not in _KNOWN
            else f"not applied: message was already {previous}",
        )
        if changed and status.is_failure(report.status):
            # A permanent failure code (SUPPRESSION_CODES) puts the number on the list.
            suppression.learn(number, report.detailed_status_code, source=source, using=db)
        if changed:
            signals.notify_after_commit([(message_pk, previous, report.status, source)], using=db)
    return changed
