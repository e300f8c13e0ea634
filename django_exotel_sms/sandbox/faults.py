"""Injected trouble: throttling, outages, latency, lost answers, and unruly callbacks."""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass
from typing import Any

from .outcomes import DELIVERED, parse_outcome

__all__ = ["Dice", "Faults"]

_RATES = frozenset(
    {
        "throttle_rate",
        "get_throttle_rate",
        "unavailable_rate",
        "server_error_rate",
        "hang_rate",
        "callback_drop_rate",
        "callback_duplicate_rate",
        "callback_reorder",
    }
)


@dataclass(frozen=True)
class Faults:
    """An immutable snapshot; ``updated`` validates and returns a new one (swapped atomically)."""

    throttle_rate: float = 0.0  # POSTs answered 429 / 40402 with Retry-After
    get_throttle_rate: float = 0.0  # GETs answered 429 / 40403
    unavailable_rate: float = 0.0  # 503 / 40405
    server_error_rate: float = 0.0  # 500 / 35000
    latency: float = 0.0  # seconds added to every API request
    latency_jitter: float = 0.0  # plus uniform(0, jitter)
    hang_rate: float = 0.0  # accept the message, then answer only after hang_seconds
    hang_seconds: float = 5.0
    retry_after: float = 1.0  # Retry-After on 429 (whole seconds, rounded up)
    callback_delay: float = 0.5  # acceptance -> final state (and its callback)
    callback_drop_rate: float = 0.0  # final state reached, callback never posted
    callback_duplicate_rate: float = 0.0  # terminal callback posted twice
    callback_reorder: float = 0.0  # a stale "submitted" callback after the terminal one
    callback_retries: int = 2  # extra attempts after a 5xx or a connection failure
    callback_retry_delay: float = 0.5
    callback_timeout: float = 5.0
    default_outcome: str = DELIVERED

    def updated(self, **changes: Any) -> Faults:
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown fault setting(s): {', '.join(unknown)}")
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "default_outcome":
                clean[name] = parse_outcome(str(value)).name
            elif name == "callback_retries":
                clean[name] = _non_negative(name, int(value))
            else:
                number = float(value)  # bools become 0.0 / 1.0 (callback_reorder=True)
                if name in _RATES and not 0.0 <= number <= 1.0:
                    raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
                clean[name] = _non_negative(name, number)
        return dataclasses.replace(self, **clean)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _non_negative(name: str, value: float) -> Any:
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


class Dice:
    """Seeded randomness behind a lock, so a seed reproduces the same faults for the same
    sequence of requests."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def chance(self, rate: float) -> bool:
        if rate <= 0.0:
            return False  # no draw: adding a zero-rate fault does not shift the sequence
        if rate >= 1.0:
            return True
        with self._lock:
            return self._rng.random() < rate

    def jitter(self, spread: float) -> float:
        if spread <= 0.0:
            return 0.0
        with self._lock:
            return self._rng.uniform(0.0, spread)
