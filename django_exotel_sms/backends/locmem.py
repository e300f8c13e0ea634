"""A test backend: what would have been sent lands in ``locmem.outbox``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import status
from ..client import BulkResult, SmsResult
from .base import BaseBackend


@dataclass
class OutboxEntry:
    to: str
    body: str
    sender: str
    options: dict[str, Any] = field(default_factory=dict)
    sid: str = ""


outbox: list[OutboxEntry] = []
_by_sid: dict[str, OutboxEntry] = {}


def _result(entry: OutboxEntry, status_: str, code: int, name: str) -> SmsResult:
    return SmsResult(
        sid=entry.sid,
        to=entry.to,
        sender=entry.sender,
        status=status_,
        detailed_status_code=code,
        detailed_status=name,
        sms_units=1 if status.is_terminal(status_) else None,
        price=None,
        date_created=None,
        date_updated=None,
        date_sent=None,
        body=entry.body,
        direction="outbound-api",
        account_sid=None,
        uri=None,
        raw={},
    )


def _accepted(entry: OutboxEntry) -> SmsResult:
    entry.sid = uuid.uuid4().hex
    outbox.append(entry)
    _by_sid[entry.sid] = entry
    return _result(entry, status.QUEUED, 21010, "PENDING_TO_OPERATOR")


class LocmemBackend(BaseBackend):
    def send(self, to: str, body: str, sender: str, **options: Any) -> SmsResult:
        return _accepted(OutboxEntry(to, body, sender, dict(options)))

    def send_bulk(self, to: Sequence[str], body: str, sender: str, **options: Any) -> BulkResult:
        results = tuple(_accepted(OutboxEntry(n, body, sender, dict(options))) for n in to)
        return BulkResult(http_status=200, results=results)

    def send_dynamic_bulk(
        self, messages: Sequence[Mapping[str, Any]], sender: str | None = None, **options: Any
    ) -> BulkResult:
        results = tuple(
            _accepted(
                OutboxEntry(
                    m["to"],
                    m["body"],
                    m.get("sender") or sender or "",
                    {**options, **{k: v for k, v in m.items() if k not in ("to", "body")}},
                )
            )
            for m in messages
        )
        return BulkResult(http_status=200, results=results)

    def get_message(self, sid: str) -> SmsResult | None:
        # Everything the outbox took counts as delivered when asked about later.
        entry = _by_sid.get(sid)
        if entry is None:
            return None
        return _result(entry, status.SENT, 20005, "DELIVERED_TO_HANDSET")


def clear() -> None:
    outbox.clear()
    _by_sid.clear()
