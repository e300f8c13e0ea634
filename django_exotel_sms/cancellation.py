"""Cancelling messages not yet handed to Exotel, race-free with the claim.

Every door (``message.cancel()``, ``batch.cancel()``, ``queryset.cancel()``, the REST API,
the admin) comes here; rows move through ``gate.close``, the one way to a local final status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet

from . import status

if TYPE_CHECKING:
    from .models import SmsMessage


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: ``cancelled`` now, ``on_their_way`` (claimed or handed to Exotel
    and not final: too late to stop), ``already_final`` (sent, failed, expired, ...)."""

    cancelled: int
    on_their_way: int
    already_final: int

    def as_dict(self) -> dict[str, int]:
        return {
            "cancelled": self.cancelled,
            "on_their_way": self.on_their_way,
            "already_final": self.already_final,
        }


def cancel(
    qs: QuerySet[SmsMessage], reason: str = "cancelled", chunk: int = 10_000
) -> CancelResult:
    """Cancel every row of ``qs`` not yet claimed; race-free with the claim.

    Goes through ``gate.close``, which locks and moves only rows still ``pending``: a
    row a worker claimed in between stays with the worker and counts as on its way.
    """
    from . import gate

    cancelled = 0
    skipped: list[int] = []  # locked by a claim in progress: on their way
    last = 0
    while True:
        pks = list(
            qs.filter(status=status.PENDING, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk]
        )
        if not pks:
            break
        closed = gate.close(dict.fromkeys(pks, reason), status.CANCELLED, note="cancelled")
        cancelled += len(closed)
        if len(closed) < len(pks):
            skipped.extend(set(pks) - set(closed))
        last = pks[-1]
    counts = dict(
        qs.exclude(status=status.PENDING)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    final = sum(n for s, n in counts.items() if status.is_terminal(s))
    moving = sum(n for s, n in counts.items() if not status.is_terminal(s))
    if skipped:
        # Still pending only while the claim that locked them has not committed yet.
        moving += qs.filter(pk__in=skipped, status=status.PENDING).count()
    return CancelResult(cancelled, moving, max(0, final - cancelled))
