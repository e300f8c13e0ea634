"""Sid ownership after the fact: held callback reports, and Sid conflicts on recording.

A status callback that cannot name its message -- several Sid-less messages in its
scope have the posted number (a batch repeating a number, a callback arriving before
the send's answer) -- is held as unapplied history on every candidate (``views.py``).
When a send's answer later records Sids, :func:`apply_held_reports` applies the held
reports whose Sid a row just got, forward-only: one query per chunk when none is held.

:func:`write_sids` guards the outcome write: should another row already hold a Sid that
Exotel's answer gives to one of ours (it cannot happen without a guess, which adoption
never makes), the answer wins, the other row gives the Sid back with a note in its
history, and nothing crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db import IntegrityError, router, transaction
from django.utils import timezone

from .models import SmsMessage, StatusEvent
from .tracking import HELD_NOTE, RELEASED_NOTE, apply_report
from .views import held_report

logger = logging.getLogger(__name__)

T = TypeVar("T")


def apply_held_reports(sids: Mapping[int, str]) -> int:
    """Apply the reports held for rows that now have these Sids (``{pk: sid}``); how many."""
    if not sids:
        return 0
    db = router.db_for_write(SmsMessage)
    held = (
        StatusEvent.objects.using(db)
        .filter(
            message_id__in=list(sids),
            source=StatusEvent.SOURCE_CALLBACK,
            applied=False,
            note__startswith=HELD_NOTE,
        )
        .order_by("pk")
        .values_list("pk", "message_id", "payload")
    )
    matched: list[tuple[int, int, Any]] = []
    for event_pk, message_pk, payload in held:
        parsed = held_report(payload)
        if parsed is not None and parsed[0] == sids[message_pk]:
            matched.append((event_pk, message_pk, parsed[1]))
    if not matched:
        return 0
    # Marked first, so a report is never applied twice (each row gets its Sid once).
    StatusEvent.objects.using(db).filter(pk__in=[m[0] for m in matched]).update(note=RELEASED_NOTE)
    for _, message_pk, report in matched:
        apply_report(message_pk, report, StatusEvent.SOURCE_CALLBACK)
    logger.info("Applied %d held status report(s) once their Sids were known", len(matched))
    return len(matched)


def write_sids(write: Callable[[], T], per_row: Mapping[int, Mapping[str, Any]]) -> T:
    """Run ``write`` (an outcome write giving rows their Sids), resolving Sid conflicts.

    No savepoint on the usual path: ``write`` runs its own transaction, which the
    IntegrityError rolls back whole before the conflicts are resolved and it runs again.
    """
    for _ in range(2):
        try:
            return write()
        except IntegrityError:
            if not _give_back(per_row):
                raise  # not a Sid of ours held elsewhere: a real error, not ours to hide
    return write()  # a third time only if another row took one of the Sids meanwhile


def _give_back(per_row: Mapping[int, Mapping[str, Any]]) -> int:
    """Rows holding a Sid the answer gives to another row give it back; how many."""
    owner = {values["sid"]: pk for pk, values in per_row.items() if values.get("sid")}
    if not owner:
        return 0
    db = router.db_for_write(SmsMessage)
    now = timezone.now()
    with transaction.atomic(using=db):
        holders = [
            (pk, sid, st)
            for pk, sid, st in SmsMessage.objects.using(db)
            .select_for_update()
            .filter(sid__in=list(owner))
            .values_list("pk", "sid", "status")
            if owner[sid] != pk
        ]
        if not holders:
            return 0
        SmsMessage.objects.using(db).filter(pk__in=[h[0] for h in holders]).update(
            sid=None, updated_at=now
        )
        StatusEvent.objects.using(db).bulk_create(
            [
                StatusEvent(
                    message_id=pk,
                    status=st,
                    source=StatusEvent.SOURCE_LOCAL,
                    applied=False,
                    note=(
                        f"Sid {sid} given back: Exotel's send answer gives it to message "
                        f"{owner[sid]}; this message's status may have come from its reports"
                    )[:255],
                )
                for pk, sid, st in holders
            ]
        )
    for pk, sid, _ in holders:
        logger.error(
            "SMS %s held Sid %s, which Exotel's answer gives to SMS %s: given back",
            pk,
            sid,
            owner[sid],
        )
    return len(holders)
