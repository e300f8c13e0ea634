"""A local stand-in for the Exotel SMS API, honouring its documented contract.

Standard library plus ``requests`` only, and no Django, so ``python -m
django_exotel_sms.sandbox`` runs anywhere::

    with SandboxServer(callback_delay=0.05, rules=["+9199999*=dnd"]) as sandbox:
        ...  # point the client's BASE_URL at sandbox.url
        sandbox.wait_for_callbacks(5)
"""

from __future__ import annotations

from .control import SandboxControl
from .faults import Faults
from .outcomes import (
    DELIVERED,
    DELIVERED_OPERATOR,
    DND,
    INVALID,
    OUTCOMES,
    STUCK,
    Outcome,
    Rule,
    failed,
    parse_outcome,
    unknown,
)
from .phones import Number, parse_number, sms_units
from .server import SandboxListenError, SandboxServer
from .store import CallbackAttempt, RecordedRequest, StoredMessage

__all__ = [
    "DELIVERED",
    "DELIVERED_OPERATOR",
    "DND",
    "INVALID",
    "OUTCOMES",
    "STUCK",
    "CallbackAttempt",
    "Faults",
    "Number",
    "Outcome",
    "RecordedRequest",
    "Rule",
    "SandboxControl",
    "SandboxListenError",
    "SandboxServer",
    "StoredMessage",
    "failed",
    "parse_number",
    "parse_outcome",
    "sms_units",
    "unknown",
]
