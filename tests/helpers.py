"""Small helpers shared by the sending and worker tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

ON_POSTGRES = os.environ.get("TEST_DB") == "postgres"
needs_postgres = pytest.mark.skipif(not ON_POSTGRES, reason="needs TEST_DB=postgres")


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers in E.164."""
    return [f"+91987{start + i:07d}" for i in range(count)]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
