from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..client import BulkResult, SmsResult
from .locmem import LocmemBackend


class ConsoleBackend(LocmemBackend):
    """Prints each message to stdout (for development) and accepts it like the locmem backend."""

    def _print(self, to: str, body: str, sender: str) -> None:
        sys.stdout.write(f"SMS from {sender} to {to}:\n{body}\n{'-' * 40}\n")

    def send(self, to: str, body: str, sender: str, **options: Any) -> SmsResult:
        self._print(to, body, sender)
        return super().send(to, body, sender, **options)

    def send_bulk(self, to: Sequence[str], body: str, sender: str, **options: Any) -> BulkResult:
        for number in to:
            self._print(number, body, sender)
        return super().send_bulk(to, body, sender, **options)

    def send_dynamic_bulk(
        self, messages: Sequence[Mapping[str, Any]], sender: str | None = None, **options: Any
    ) -> BulkResult:
        for m in messages:
            self._print(m["to"], m["body"], m.get("sender") or sender or "")
        return super().send_dynamic_bulk(messages, sender, **options)
