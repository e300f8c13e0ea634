"""What the sandbox remembers: messages, the request log, callback attempts, counts."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "DATE_SENT_PLACEHOLDER",
    "CallbackAttempt",
    "RecordedRequest",
    "Store",
    "StoredMessage",
    "exotel_now",
]

# Exotel writes times in IST; unset DateSent may read as the epoch in IST.
IST = timezone(timedelta(hours=5, minutes=30))
DATE_SENT_PLACEHOLDER = "1970-01-01 05:30:00"


def exotel_now() -> str:
    return datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; the Authorization header and the API token are never kept."""

    time: float
    method: str
    path: str
    query: str
    form: list[tuple[str, str]]
    status: int
    recipients: list[str]  # normalised where the number parses, else as given
    authorized: bool
    headers: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CallbackAttempt:
    time: float
    sid: str
    url: str
    form: list[tuple[str, str]]
    kind: str  # "terminal", "duplicate", "stale" (reordered submitted) or "dropped"
    attempt: int  # 1-based; 0 for "dropped"
    status_code: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StoredMessage:
    sid: str
    account_sid: str
    from_: str
    to: str  # as echoed to the client
    number: str  # normalised, e.g. "+919999912345"
    body: str
    encoding: str | None
    sms_type: str | None
    dlt_template_id: str | None
    dlt_entity_id: str | None
    custom_field: str | None
    status_callback: str | None
    priority: str | None
    date_created: str
    date_updated: str
    accepted_at: float  # time.time() at acceptance
    outcome: str
    final_status: str
    final_code: int
    final_detailed_status: str
    units: int  # what SmsUnits becomes once the message leaves the queue
    status: str = "queued"
    detailed_status_code: int = 21010
    detailed_status: str = "PENDING_TO_OPERATOR"
    date_sent: str | None = None
    sms_units: int | None = None
    drop_callback: bool = False
    duplicate_callback: bool = False
    reorder_callback: bool = False
    callbacks_sent: int = field(default=0)

    def summary(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "number": self.number,
            "status": self.status,
            "detailed_status_code": self.detailed_status_code,
            "detailed_status": self.detailed_status,
            "outcome": self.outcome,
            "final_status": self.final_status,
            "final_code": self.final_code,
            "custom_field": self.custom_field,
        }


class Store:
    """All mutable state behind one lock; readers get copies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._messages: dict[str, StoredMessage] = {}
        self._requests: list[RecordedRequest] = []
        self._callbacks: list[CallbackAttempt] = []
        self._counts: Counter[str] = Counter()

    def clear(self) -> None:
        with self.lock:
            self._messages.clear()
            self._requests.clear()
            self._callbacks.clear()
            self._counts.clear()

    def add_messages(self, messages: list[StoredMessage]) -> None:
        with self.lock:
            for message in messages:
                self._messages[message.sid] = message
                self._counts[message.number] += 1

    def finish(self, sid: str) -> StoredMessage | None:
        """Move a message to its planned state; None if it is gone (reset)."""
        with self.lock:
            message = self._messages.get(sid)
            if message is None:
                return None
            now = exotel_now()
            message.status = message.final_status
            message.detailed_status_code = message.final_code
            message.detailed_status = message.final_detailed_status
            message.date_updated = now
            message.sms_units = message.units
            message.date_sent = now if message.status == "sent" else DATE_SENT_PLACEHOLDER
            return dataclasses.replace(message)

    def get(self, sid: str) -> StoredMessage | None:
        with self.lock:
            message = self._messages.get(sid)
            return dataclasses.replace(message) if message is not None else None

    def messages(self) -> dict[str, StoredMessage]:
        with self.lock:
            return {sid: dataclasses.replace(m) for sid, m in self._messages.items()}

    def summaries(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {sid: m.summary() for sid, m in self._messages.items()}

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self._counts)

    def record_request(self, entry: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(entry)

    def requests(self, since: int = 0) -> list[RecordedRequest]:
        with self.lock:
            return self._requests[since:]

    def record_callback(self, attempt: CallbackAttempt) -> None:
        with self.lock:
            self._callbacks.append(attempt)

    def callbacks(self, since: int = 0) -> list[CallbackAttempt]:
        with self.lock:
            return self._callbacks[since:]
