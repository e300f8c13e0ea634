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


def _accepted(entry: OutboxEntry) -> SmsResult:
    entry.sid = uuid.uuid4().hex
    outbox.append(entry)
    _by_sid[entry.sid] = entry
    return SmsResult(
        sid=entry.sid,
        to=entry.to,
        sender=entry.sender,
        status=status.QUEUED,
        detailed_status_code=21010,
        detailed_status="PENDING_TO_OPERATOR",
        sms_units=None,
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
        entry = _by_sid.get(sid)
        if entry is None:
            return None
        return SmsResult(
            sid=sid,
            to=entry.to,
            sender=entry.sender,
            status=status.SENT,
            detailed_status_code=20005,
            detailed_status="DELIVERED_TO_HANDSET",
            sms_units=1,
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


def clear() -> None:
    outbox.clear()
    _by_sid.clear()
