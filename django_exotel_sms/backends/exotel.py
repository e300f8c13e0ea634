from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..client import BulkResult, ExotelClient, SmsResult
from .base import BaseBackend


class ExotelBackend(BaseBackend):
    """Sends through Exotel's API (or a stand-in at ``BASE_URL``) with the account's settings."""

    requires_credentials = True

    def __init__(self, account: str = "default") -> None:
        super().__init__(account)
        self.client = ExotelClient.from_settings(account)

    def send(self, to: str, body: str, sender: str, **options: Any) -> SmsResult:
        return self.client.send(to, body, sender, **options)

    def send_bulk(self, to: Sequence[str], body: str, sender: str, **options: Any) -> BulkResult:
        return self.client.send_bulk(to, body, sender, **options)

    def send_dynamic_bulk(
        self, messages: Sequence[Mapping[str, Any]], sender: str | None = None, **options: Any
    ) -> BulkResult:
        return self.client.send_dynamic_bulk(messages, sender, **options)

    def get_message(self, sid: str) -> SmsResult | None:
        return self.client.get_message(sid)

    def close(self) -> None:
        self.client.close()
