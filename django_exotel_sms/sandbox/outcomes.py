"""What becomes of a message: outcome names, and rules choosing one per recipient.

Outcomes are plain strings so they travel through the CLI and JSON control endpoints:
``delivered``, ``delivered_operator``, ``dnd``, ``invalid``, ``stuck``, ``failed:<code>``
(any detailed code, e.g. ``failed:23185``) and ``unknown:<code>`` (an undocumented code).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from django_exotel_sms.status import DETAILED_STATUSES

from .phones import parse_number

__all__ = [
    "DELIVERED",
    "DELIVERED_OPERATOR",
    "DND",
    "INVALID",
    "OUTCOMES",
    "STUCK",
    "Outcome",
    "Rule",
    "RuleBook",
    "failed",
    "parse_outcome",
    "unknown",
]

DELIVERED = "delivered"  # sent / 20005 DELIVERED_TO_HANDSET
DELIVERED_OPERATOR = "delivered_operator"  # sent / 20006 DELIVERED_TO_OPERATOR
DND = "dnd"  # failed-dnd / 23005
INVALID = "invalid"  # refused at API time: 23010 entry in a 207, or 400/40203
STUCK = "stuck"  # moves to submitted / 21020 and never reaches a terminal state
OUTCOMES = (DELIVERED, DELIVERED_OPERATOR, DND, INVALID, STUCK)

_FIXED = {DELIVERED: 20005, DELIVERED_OPERATOR: 20006, DND: 23005, INVALID: 23010, STUCK: 21020}
_TERMINAL = frozenset({"sent", "failed", "failed-dnd"})


def failed(code: int) -> str:
    return f"failed:{code}"


def unknown(code: int) -> str:
    return f"unknown:{code}"


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str
    code: int
    detailed_status: str

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL

    @property
    def rejected(self) -> bool:
        return self.name == INVALID


def parse_outcome(text: str) -> Outcome:
    """Resolve an outcome name; ValueError for anything else."""
    name = text.strip()
    if name in _FIXED:
        known = DETAILED_STATUSES[_FIXED[name]]
        return Outcome(name, known.status, known.code, known.name)
    kind, sep, code_text = name.partition(":")
    if sep and kind in ("failed", "unknown") and code_text.strip().isdigit():
        code = int(code_text)
        documented = DETAILED_STATUSES.get(code) if kind == "failed" else None
        if documented is not None:
            return Outcome(name, documented.status, code, documented.name)
        # A code Exotel may add later (23084-24000 are reserved): clients must keep it.
        return Outcome(name, "failed", code, f"UNDOCUMENTED_{code}")
    choices = ", ".join((*OUTCOMES, "failed:<code>", "unknown:<code>"))
    raise ValueError(f"unknown outcome {text!r}; use one of {choices}")


def _has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class Rule:
    """``pattern`` globs the normalised number (``+9199999*``); a plain number matches itself."""

    pattern: str
    outcome: str
    _match: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pattern.strip():
            raise ValueError("a rule needs a pattern")
        parse_outcome(self.outcome)  # fail at configuration time, not mid-send
        number = parse_number(self.pattern)
        literal = not _has_glob(self.pattern) and number.valid
        object.__setattr__(self, "_match", number.normalised if literal else self.pattern.strip())

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``"<pattern>=<outcome>"`` as given to ``--rule``."""
        pattern, sep, outcome = text.rpartition("=")
        if not sep:
            raise ValueError(f"rule {text!r} is not of the form PATTERN=OUTCOME")
        return cls(pattern.strip(), outcome.strip())

    @classmethod
    def coerce(cls, value: object) -> Rule:
        """A Rule, ``"pattern=outcome"``, ``[pattern, outcome]`` or ``{"pattern", "outcome"}``."""
        if isinstance(value, Rule):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, dict):
            return cls(str(value["pattern"]), str(value["outcome"]))
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return cls(str(value[0]), str(value[1]))
        raise ValueError(f"cannot read a rule from {value!r}")

    def matches(self, normalised: str) -> bool:
        return fnmatchcase(normalised, self._match)

    def as_dict(self) -> dict[str, str]:
        return {"pattern": self.pattern, "outcome": self.outcome}


class RuleBook:
    """Ordered rules, first match wins; thread-safe."""

    def __init__(self, rules: Iterable[object] = ()) -> None:
        self._lock = threading.Lock()
        self._rules = [Rule.coerce(r) for r in rules]
        self._outcomes: dict[str, Outcome] = {}

    def snapshot(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def replace(self, rules: Iterable[object]) -> None:
        parsed = [Rule.coerce(r) for r in rules]
        with self._lock:
            self._rules = parsed

    def add(self, rule: Rule, *, first: bool = False) -> None:
        with self._lock:
            if first:
                self._rules.insert(0, rule)
            else:
                self._rules.append(rule)

    def outcome_for(self, normalised: str, default: str) -> Outcome:
        with self._lock:
            name = next((r.outcome for r in self._rules if r.matches(normalised)), default)
            cached = self._outcomes.get(name)
            if cached is None:
                cached = self._outcomes[name] = parse_outcome(name)
            return cached
