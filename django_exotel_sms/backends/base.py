from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..client import BulkResult, SmsResult


class BaseBackend:
    """The transport step: the same four calls as ``ExotelClient``, nothing about the ORM."""

    # True when the account's ACCOUNT_SID / API_KEY / API_TOKEN must be set to send.
    requires_credentials = False

    def __init__(self, account: str = "default") -> None:
        self.account = account

    def send(self, to: str, body: str, sender: str, **options: Any) -> SmsResult:
        raise NotImplementedError

    def send_bulk(self, to: Sequence[str], body: str, sender: str, **options: Any) -> BulkResult:
        raise NotImplementedError

    def send_dynamic_bulk(
        self, messages: Sequence[Mapping[str, Any]], sender: str | None = None, **options: Any
    ) -> BulkResult:
        raise NotImplementedError

    def get_message(self, sid: str) -> SmsResult | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections."""
