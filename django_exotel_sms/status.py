"""Message statuses: Exotel's own words, the local ones around them, and their order.

The state machine (documented in the README and docs/delivery.rst)::

    pending ──claim──► submitting ──API 200──► queued ─► sending ─► submitted ─► sent
                          │  │                   (any Exotel status may be skipped)  ├► failed-dnd
                          │  ├──API 4xx / 207 entry──► rejected                      └► failed
                          │  ├──read timeout──► uncertain ──details call / callback──► (any above)
                          │  └──429 / 503 / connect error──► pending (retried later)
                          └──worker died (stale claim)──► pending or resolved by reconciliation

    pending ──the send gate refuses it for good──► suppressed | expired | cancelled

``suppressed``, ``expired`` and ``cancelled`` are local final statuses of messages that were
never handed to Exotel (``gate.py`` decides them; ``status_reason`` says why).

Status only moves forward (by ``rank``); once terminal, it never changes again. A
late or repeated report still becomes a ``StatusEvent`` in the history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Local statuses, before and around Exotel's.
PENDING = "pending"
SUBMITTING = "submitting"
UNCERTAIN = "uncertain"
REJECTED = "rejected"
# Local final statuses: the message was never handed to Exotel, on purpose.
SUPPRESSED = "suppressed"
EXPIRED = "expired"
CANCELLED = "cancelled"

# Exotel's statuses, stored verbatim.
QUEUED = "queued"
SENDING = "sending"
SUBMITTED = "submitted"
SENT = "sent"
FAILED_DND = "failed-dnd"
FAILED = "failed"

STATUS_CHOICES: list[tuple[str, str]] = [
    (PENDING, "Pending (saved, not yet sent to Exotel)"),
    (SUBMITTING, "Submitting (a worker is sending it to Exotel)"),
    (UNCERTAIN, "Uncertain (Exotel may or may not have accepted it)"),
    (QUEUED, "Queued at Exotel"),
    (SENDING, "Sending to operator"),
    (SUBMITTED, "Submitted to operator"),
    (SENT, "Sent (delivered)"),
    (FAILED_DND, "Failed: DND"),
    (FAILED, "Failed"),
    (REJECTED, "Rejected by the API"),
    (SUPPRESSED, "Suppressed (not sent: opt-out, DND, limit, allow-list or veto)"),
    (EXPIRED, "Expired (not sent before its expiry)"),
    (CANCELLED, "Cancelled (not sent)"),
]

EXOTEL_STATUSES = frozenset({QUEUED, SENDING, SUBMITTED, SENT, FAILED_DND, FAILED})
# Final without reaching Exotel, by the send gate's decision; not failures (no sms_failed).
NOT_SENT_STATUSES = frozenset({SUPPRESSED, EXPIRED, CANCELLED})
TERMINAL_STATUSES = frozenset({SENT, FAILED_DND, FAILED, REJECTED}) | NOT_SENT_STATUSES
FAILURE_STATUSES = frozenset({FAILED_DND, FAILED, REJECTED})
# Statuses reconciliation should ask Exotel about: it has (or may have) the message.
OPEN_AT_EXOTEL = frozenset({QUEUED, SENDING, SUBMITTED, UNCERTAIN})

_RANK = {
    PENDING: 0,
    SUBMITTING: 10,
    UNCERTAIN: 15,
    QUEUED: 20,
    SENDING: 30,
    SUBMITTED: 40,
    SENT: 100,
    FAILED_DND: 100,
    FAILED: 100,
    REJECTED: 100,
    SUPPRESSED: 100,
    EXPIRED: 100,
    CANCELLED: 100,
}


def rank(status: str) -> int:
    """Order of a status; unknown statuses rank just below terminal so they never win."""
    return _RANK.get(status, 90)


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def is_not_sent(status: str) -> bool:
    """A local final status: the gate kept the message from Exotel for good."""
    return status in NOT_SENT_STATUSES


def is_failure(status: str) -> bool:
    return status in FAILURE_STATUSES


def can_advance(current: str, new: str) -> bool:
    """True when ``new`` is a forward move from ``current``."""
    if is_terminal(current):
        return False
    return rank(new) > rank(current)


_SEPARATORS = re.compile(r"[\s_-]+")
# Spellings seen in the wild ("failed_dnd", "Failed DND") of the documented words.
_DOCUMENTED = {_SEPARATORS.sub("-", word): word for word in EXOTEL_STATUSES}


def normalize_exotel_status(value: object) -> str | None:
    """Exotel's ``Status`` as stored, or None when absent.

    Case and the separators between words (``_``, spaces, ``-``) do not matter for the
    documented words: ``failed_dnd``, ``Failed DND`` and ``failed-dnd`` are all
    ``failed-dnd``. Unknown words are kept as given (stripped, lower-cased), never guessed.
    """
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    return _DOCUMENTED.get(_SEPARATORS.sub("-", text), text)


@dataclass(frozen=True)
class DetailedStatus:
    code: int
    status: str
    name: str
    description: str


_DETAILED = [
    DetailedStatus(21010, QUEUED, "PENDING_TO_OPERATOR", "Queued at Exotel, not yet sent on."),
    DetailedStatus(21015, SENDING, "SENDING_TO_OPERATOR", "Being sent to the operator."),
    DetailedStatus(
        21020,
        SUBMITTED,
        "PENDING_ON_OPERATOR",
        "Waiting at the operator (promotional SMS in India may wait for 10:00-21:00).",
    ),
    DetailedStatus(20005, SENT, "DELIVERED_TO_HANDSET", "Delivered to the handset."),
    DetailedStatus(20006, SENT, "DELIVERED_TO_OPERATOR", "Delivered to the operator."),
    DetailedStatus(23005, FAILED_DND, "FAILED_REJECTED_DND", "The number is on DND."),
    DetailedStatus(23000, FAILED, "FAILED_MISSING_BODY", "The message had no body."),
    DetailedStatus(
        23010, FAILED, "FAILED_INVALID_DESTINATION_NUMBER", "The destination number is invalid."
    ),
    DetailedStatus(23015, FAILED, "FAILED_SPAM_DETECTED", "Rejected as spam."),
    DetailedStatus(23020, FAILED, "FAILED_REJECTED_BLACKLIST", "The number is blacklisted."),
    DetailedStatus(23030, FAILED, "FAILED_UNAVAILABLE_ROUTE", "No route to the destination."),
    DetailedStatus(
        23035,
        FAILED,
        "FAILED_SUBSCRIBER_UNAVAILABLE",
        "The subscriber is temporarily unavailable.",
    ),
    DetailedStatus(23040, FAILED, "FAILED_SUBSCRIBER_UNKNOWN", "The subscriber is unknown."),
    DetailedStatus(23050, FAILED, "FAILED_EXPIRED", "The message expired before delivery."),
    DetailedStatus(23060, FAILED, "FAILED_REJECTED", "Rejected by the operator."),
    DetailedStatus(23070, FAILED, "FAILED_INVALID_MESSAGE", "The message is invalid."),
    DetailedStatus(23072, FAILED, "FAILED_INVALID_SENDER_ID", "The sender ID is invalid."),
    DetailedStatus(23080, FAILED, "SENDER_BLOCKED_BY_DLT", "The sender is blocked by DLT."),
    DetailedStatus(23081, FAILED, "ENTITY_BLOCKED_BY_DLT", "The entity is blocked by DLT."),
    DetailedStatus(23082, FAILED, "TEMPLATE_BLOCKED_BY_DLT", "The template is blocked by DLT."),
    DetailedStatus(23083, FAILED, "FAILED_DLT_SCRUBBING_ERROR", "DLT scrubbing failed."),
    DetailedStatus(23084, FAILED, "FAILED_DLT_CONSENT_ERROR", "No DLT consent for this number."),
    DetailedStatus(23181, FAILED, "DLT_TEMPLATE_ID_INVALID", "The DLT template id is invalid."),
    DetailedStatus(23182, FAILED, "DLT_TEMPLATE_NOT_FOUND", "The DLT template was not found."),
    DetailedStatus(23183, FAILED, "DLT_TEMPLATE_ID_INACTIVE", "The DLT template is inactive."),
    DetailedStatus(
        23184, FAILED, "DLT_TEMPLATE_ID_BLACKLISTED", "The DLT template is blacklisted."
    ),
    DetailedStatus(
        23185, FAILED, "DLT_TEMPLATE_DOES_NOT_MATCH", "The body does not match the DLT template."
    ),
    DetailedStatus(23186, FAILED, "DLT_LENGTH_EXCEEDED", "A DLT variable is too long."),
    DetailedStatus(23281, FAILED, "DLT_ENTITY_NOT_FOUND", "The DLT entity was not found."),
    DetailedStatus(24010, FAILED, "FAILED_SYSTEM_ERROR", "System error at Exotel."),
    DetailedStatus(24105, FAILED, "FAILED_HANDSET_ERROR", "Handset error."),
    DetailedStatus(24110, FAILED, "FAILED_OPERATOR_ERROR", "Operator error."),
    DetailedStatus(24120, FAILED, "FAILED_SUBSCRIBER_ERROR", "Subscriber error."),
    DetailedStatus(24990, FAILED, "FAILED_UNKNOWN_ERROR", "Unknown error."),
]

DETAILED_STATUSES: dict[int, DetailedStatus] = {d.code: d for d in _DETAILED}


def parse_code(value: object) -> int | None:
    """Exotel sends ``DetailedStatusCode`` as a string in some examples and a number in others."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return int(float(text)) if "." in text else int(text)
    except (ValueError, OverflowError):  # OverflowError: "1e999"-sized decimals are inf
        return None


DELIVERED_TO_HANDSET = 20005
DELIVERED_TO_OPERATOR = 20006


def delivered_to_handset(word: str, code: int | None) -> bool:
    """True only when Exotel confirmed delivery to the phone: ``sent`` with 20005.

    ``sent`` also covers 20006 DELIVERED_TO_OPERATOR: the operator accepted the SMS but no
    handset receipt came back (some operators and international routes never send one),
    so it may or may not have reached the phone. A ``sent`` without a detailed code
    confirms no more than that.
    """
    return word == SENT and code == DELIVERED_TO_HANDSET


def describe_code(code: int | None) -> DetailedStatus | None:
    """The documented meaning of a code; None for unknown (future) codes, which are kept."""
    if code is None:
        return None
    return DETAILED_STATUSES.get(code)
