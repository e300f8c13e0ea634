"""Sid ownership after the fact: held callback reports, and Sid conflicts on recording.

A status callback that cannot name its message -- several Sid-less messages in its
scope have the posted number (a batch repeating a number, a callback arriving before
the send's answer) -- is held as unapplied history on every candidate (``views.py``).
When a send's answer later records Sids, :func:`apply_held_reports` applies the held
reports whose Sid a row just got, forward-only. The outcome write's own lock query tells
which rows have any (:func:`held_exists`), so a chunk with none costs no query more.
A row that got another Sid is not the report's (at most once, a row has one Sid); when
all candidates but one have Sids of their own, the last one adopts the held Sid.

:func:`write_sids` guards the outcome write: should another row already hold a Sid that
Exotel's answer gives to one of ours (adoption never guesses, so it should not happen),
the answer wins: the other row gives the Sid back with a note in its history, and nothing
crashes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.db import IntegrityError, router, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from . import logfields
from .conf import get_settings
from .models import SmsMessage, StatusEvent
from .tracking import HELD_NOTE, NOT_THIS_NOTE, RELEASED_NOTE, StatusReport, apply_report
from .views import MAX_CANDIDATES, adopt, held_report

logger = logging.getLogger(__name__)

T = TypeVar("T")


Held = tuple[int, int, str, StatusReport]  # event pk, message pk, Sid, report
_HELD = Q(note__startswith=HELD_NOTE)


def held_exists() -> Exists:
    """Whether a message has a held report (for annotating the outcome write's lock query)."""
    return Exists(
        StatusEvent.objects.filter(
            _HELD, message_id=OuterRef("pk"), source=StatusEvent.SOURCE_CALLBACK, applied=False
        )
    )


def _held_events(db: str, notes: Q = _HELD, **filters: Any) -> list[Held]:
    events = (
        StatusEvent.objects.using(db)
        .filter(notes, source=StatusEvent.SOURCE_CALLBACK, applied=False, **filters)
        .order_by("pk")
        .values_list("pk", "message_id", "payload")
    )
    out = []
    for event_pk, message_pk, payload in events:
        parsed = held_report(payload)
        if parsed is not None:
            out.append((int(event_pk), int(message_pk), *parsed))
    return out


def _release(db: str, message_pk: int, held: list[Held]) -> int:
    # Marked first, so a report is never applied twice.
    StatusEvent.objects.using(db).filter(pk__in=[h[0] for h in held]).update(note=RELEASED_NOTE)
    for _, _, _, report in held:
        apply_report(message_pk, report, StatusEvent.SOURCE_CALLBACK)
    return len(held)


def apply_held_reports(sids: Mapping[int, str]) -> int:
    """Apply the reports held for rows that now have these Sids (``{pk: sid}``); how many."""
    if not sids:
        return 0
    db = router.db_for_write(SmsMessage)
    mine: dict[int, list[Held]] = {}
    elsewhere: list[Held] = []
    for held in _held_events(db, message_id__in=list(sids)):
        if held[2] == sids[held[1]]:
            mine.setdefault(held[1], []).append(held)
        else:
            elsewhere.append(held)
    applied = sum(_release(db, pk, held) for pk, held in mine.items())
    if elsewhere and not get_settings().at_least_once:
        # At most once, a row has one Sid: these reports are another candidate's.
        StatusEvent.objects.using(db).filter(pk__in=[h[0] for h in elsewhere]).update(
            note=NOT_THIS_NOTE
        )
        applied += sum(_settle_last_candidate(db, held) for held in _one_per_sid(elsewhere))
    if applied:
        logger.info("Applied %d held status report(s) once their Sids were known", applied)
    return applied


def _one_per_sid(held: list[Held]) -> list[Held]:
    """One held report per Sid: its copies on the other candidates lead to the same place."""
    return list({h[2]: h for h in reversed(held)}.values())


def _settle_last_candidate(db: str, first: Held) -> int:
    """When every other candidate for a held Sid has a Sid of its own, it is the last one's."""
    sid = first[2]
    row = SmsMessage.objects.using(db).filter(pk=first[1]).values_list("batch_id", "to").first()
    if row is None or row[0] is None or SmsMessage.objects.using(db).filter(sid=sid).exists():
        return 0
    # Everything held for this Sid, on each message it was held on (all its candidates).
    notes = _HELD | Q(note=NOT_THIS_NOTE)
    held = [
        h
        for h in _held_events(db, notes, message__batch_id=row[0], message__to=row[1])
        if h[2] == sid
    ]
    candidates = dict(
        SmsMessage.objects.using(db).filter(pk__in={h[1] for h in held}).values_list("pk", "sid")
    )
    left = [pk for pk, known in candidates.items() if known is None]
    if len(candidates) >= MAX_CANDIDATES or len(left) != 1 or sid in candidates.values():
        return 0
    if not adopt(left[0], sid):
        return 0
    logger.info(
        "SMS %s: adopted Sid %s, the other candidates having theirs",
        left[0],
        sid,
        extra=logfields.fields(pk=left[0], sid=sid),
    )
    return _release(db, left[0], [h for h in held if h[1] == left[0]])


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
