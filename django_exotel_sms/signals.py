"""Signals, and the one place that fires them.

Status signals: receivers get ``message`` (an ``SmsMessage``) and ``previous_status``; they
are sent after the transaction that changed the status commits, so a receiver never sees
a status that is later rolled back. A receiver that raises is logged, never propagated:
it must not fail a callback or a task.

``sms_delivered`` fires for every ``sent``, which Exotel also reports for 20006
DELIVERED_TO_OPERATOR (no handset receipt); ``to_handset`` tells the two apart.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from django.db import transaction
from django.dispatch import Signal

from . import status

if TYPE_CHECKING:
    from .models import SmsMessage

logger = logging.getLogger(__name__)

sms_status_changed = Signal()  # message, previous_status, new_status, source, to_handset
sms_delivered = Signal()  # message, previous_status, to_handset
sms_failed = Signal()  # message, previous_status
# Sent at compose time, before a message is saved (``message`` has no pk yet). A receiver
# raising ``suppression.SendVetoed(reason)`` refuses it: it is saved ``suppressed`` with
# that reason and never sent. Any other exception propagates to the caller (nothing saved).
pre_send = Signal()  # message


def has_listeners() -> bool:
    """Whether any status signal has a receiver (else nothing is loaded to fire them)."""
    return any(s.has_listeners() for s in (sms_status_changed, sms_delivered, sms_failed))


def _send_robust(signal: Signal, **kwargs: object) -> None:
    for receiver, result in signal.send_robust(sender=_sender_class(), **kwargs):
        if isinstance(result, Exception):
            logger.error("django_exotel_sms signal receiver %r raised", receiver, exc_info=result)


def _sender_class() -> type[SmsMessage]:
    from .models import SmsMessage

    return SmsMessage


def notify_after_commit(
    changes: Iterable[tuple[int, str, str, str]],
    using: str = "default",
    messages: Mapping[int, SmsMessage] | None = None,
) -> None:
    """Schedule signals for ``(message_pk, previous, new, source)`` moves, after commit.

    Callers only pass moves their conditional UPDATE actually made, so a terminal
    signal fires once per message however many reports arrive. ``messages``: the rows as
    that UPDATE returned them, when the caller has them (else they are read after commit).
    """
    changes = list(changes)
    if not changes or not has_listeners():
        return

    def fire() -> None:
        from .models import SmsMessage

        pks = [pk for pk, *_ in changes]
        if messages is not None and all(pk in messages for pk in pks):
            by_pk = dict(messages)
        else:
            by_pk = SmsMessage.objects.using(using).in_bulk(pks)
        for pk, previous, new, source in changes:
            message = by_pk.get(pk)
            if message is None:
                continue
            # True only for a confirmed handset delivery (sent / 20005), not 20006.
            to_handset = status.delivered_to_handset(new, message.detailed_status_code)
            _send_robust(
                sms_status_changed,
                message=message,
                previous_status=previous,
                new_status=new,
                source=source,
                to_handset=to_handset,
            )
            if new == status.SENT:
                _send_robust(
                    sms_delivered, message=message, previous_status=previous, to_handset=to_handset
                )
            elif status.is_failure(new):
                _send_robust(sms_failed, message=message, previous_status=previous)

    transaction.on_commit(fire, using=using)
