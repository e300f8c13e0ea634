"""India DLT content templates: parse placeholders, render values, match sent text.

Operators reject (23185 DLT_TEMPLATE_DOES_NOT_MATCH) any SMS whose text differs from
its registered template, so we check locally before paying for the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from django_exotel_sms.encoding import MAX_BODY_LENGTH

__all__ = [
    "DEFAULT_MAX_VAR_LENGTH",
    "KINDS",
    "DltRenderError",
    "DltTemplateError",
    "MatchResult",
    "Placeholder",
    "match",
    "parse_template",
    "render",
    "validate_template",
]

DEFAULT_MAX_VAR_LENGTH = 30  # the usual per-variable limit on DLT portals

_OPEN, _CLOSE = "{#", "#}"

# Fullmatch patterns per tag; "var" is the generic one and takes anything non-empty.
_KIND_PATTERNS: dict[str, re.Pattern[str]] = {
    "var": re.compile(r".+", re.DOTALL),
    "numeric": re.compile(r"[0-9]+"),
    "alphanumeric": re.compile(r"[A-Za-z0-9 ]+"),
    "url": re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE),
    "cbn": re.compile(r"[+0-9 -]{6,20}"),
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"),
}

_KIND_PROBLEMS: dict[str, str] = {
    "var": "is not allowed",  # unreachable: any non-empty value passes
    "numeric": "is not numeric",
    "alphanumeric": "is not alphanumeric (letters, digits and spaces only)",
    "url": "is not a URL (it must start with http://, https:// or www.)",
    "cbn": "is not a call-back number (6-20 digits, spaces, '+' or '-')",
    "email": "is not an email address",
}

KINDS: tuple[str, ...] = tuple(_KIND_PATTERNS)

_ALLOWED_TAGS = ", ".join(f"{_OPEN}{kind}{_CLOSE}" for kind in KINDS)

# Mapping keys for values: 1-based position as int, "1" or "var1".
_KEY_RE = re.compile(r"(?:var)?([1-9][0-9]*)", re.ASCII)


class DltTemplateError(ValueError):
    """The template itself is unusable (empty, too long, unknown or malformed tag)."""


class DltRenderError(ValueError):
    """Values do not fit the template; names the placeholder at fault when there is one."""

    def __init__(
        self,
        message: str,
        *,
        position: int | None = None,
        kind: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.position = position  # 1-based
        self.kind = kind
        self.value = value


@dataclass(frozen=True)
class Placeholder:
    """A ``{#kind#}`` tag; ``start``/``end`` slice it out of the template body."""

    kind: str  # lower-case, one of KINDS
    start: int
    end: int

    @property
    def tag(self) -> str:
        return f"{_OPEN}{self.kind}{_CLOSE}"


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    values: tuple[str, ...]  # one per placeholder when matched, else empty
    reason: str  # empty when matched


def _show(value: str, limit: int = 40) -> str:
    """repr() of value, shortened so a 2000-character body cannot flood a message."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def parse_template(template_body: str) -> list[Placeholder]:
    """Return the placeholders in order; raise DltTemplateError on unknown or broken tags."""
    placeholders: list[Placeholder] = []
    pos = 0
    while True:
        start = template_body.find(_OPEN, pos)
        stray = template_body.find(_CLOSE, pos, len(template_body) if start < 0 else start)
        if stray >= 0:
            raise DltTemplateError(
                f"Malformed template: '#}}' at position {stray} has no opening '{{#'."
            )
        if start < 0:
            return placeholders
        close = template_body.find(_CLOSE, start + len(_OPEN))
        reopen = template_body.find(_OPEN, start + len(_OPEN))
        if close < 0 or 0 <= reopen < close:
            raise DltTemplateError(
                f"Malformed template: '{{#' at position {start} has no closing '#}}'."
            )
        name = template_body[start + len(_OPEN) : close]
        kind = name.lower()  # DLT portals accept {#VAR#} as well as {#var#}
        if kind not in _KIND_PATTERNS:
            tag = _show(f"{_OPEN}{name}{_CLOSE}")
            raise DltTemplateError(
                f"Unknown placeholder {tag} at position {start}; allowed tags are "
                f"{_ALLOWED_TAGS} (any letter case)."
            )
        end = close + len(_CLOSE)
        placeholders.append(Placeholder(kind, start, end))
        pos = end


def validate_template(template_body: str) -> None:
    """Raise DltTemplateError unless the body could be registered as a DLT template."""
    _checked(template_body)


def _checked(template_body: str) -> list[Placeholder]:
    if not template_body.strip():
        raise DltTemplateError("DLT template body is empty.")
    if len(template_body) > MAX_BODY_LENGTH:
        raise DltTemplateError(
            f"DLT template body is {len(template_body)} characters long; "
            f"the limit is {MAX_BODY_LENGTH}."
        )
    return parse_template(template_body)


def _check_limit(max_var_length: int) -> None:
    if max_var_length < 1:
        raise ValueError(f"max_var_length must be at least 1, not {max_var_length}.")


def _problem(position: int, kind: str, value: str, max_var_length: int) -> str | None:
    """Why value cannot fill placeholder number ``position``, or None if it can."""
    label = f"variable {position} ({_OPEN}{kind}{_CLOSE})"
    if not value:
        return f"{label} is empty"
    if len(value) > max_var_length:
        return f"{label} {_show(value)} is {len(value)} characters; the limit is {max_var_length}"
    if not _KIND_PATTERNS[kind].fullmatch(value):
        return f"{label} {_show(value)} {_KIND_PROBLEMS[kind]}"
    return None


def _position_of(key: object) -> int | None:
    if isinstance(key, bool):  # True == 1 would otherwise slip through
        return None
    if isinstance(key, int):
        return key if key >= 1 else None
    if isinstance(key, str):
        found = _KEY_RE.fullmatch(key)
        return int(found.group(1)) if found else None
    return None


def _collect(
    placeholders: list[Placeholder], context: Mapping[str, object] | Sequence[object]
) -> list[str]:
    count = len(placeholders)
    raw: list[object]
    if isinstance(context, (str, bytes)):
        # A str is a Sequence too; treating it as one value per character is never intended.
        raise TypeError("context must be a sequence or a mapping of values, not a string.")
    if isinstance(context, Mapping):
        by_position: dict[int, object] = {}
        for key, value in context.items():
            position = _position_of(key)
            if position is None:
                raise DltRenderError(
                    f"unknown variable key {key!r}; use 1-based positions such as 1, '1' or 'var1'"
                )
            if position > count:
                raise DltRenderError(
                    f"extra value for key {key!r}: the template has {count} placeholder(s)",
                    position=position,
                )
            if position in by_position:
                raise DltRenderError(
                    f"variable {position} is given more than once (key {key!r})",
                    position=position,
                )
            by_position[position] = value
        raw = [by_position.get(position) for position in range(1, count + 1)]
    elif isinstance(context, Sequence):
        if len(context) > count:
            raise DltRenderError(
                f"got {len(context)} values but the template has {count} placeholder(s)"
            )
        raw = [*context, *([None] * (count - len(context)))]
    else:
        raise TypeError(
            f"context must be a sequence or a mapping of values, not {type(context).__name__}."
        )

    values: list[str] = []
    for position, (placeholder, value) in enumerate(zip(placeholders, raw, strict=True), start=1):
        if value is None:
            raise DltRenderError(
                f"variable {position} ({placeholder.tag}) has no value",
                position=position,
                kind=placeholder.kind,
            )
        values.append(value if isinstance(value, str) else str(value))
    return values


def render(
    template_body: str,
    context: Mapping[str, object] | Sequence[object],
    *,
    max_var_length: int = DEFAULT_MAX_VAR_LENGTH,
) -> str:
    """Fill the placeholders with values given in order (sequence) or by position (mapping).

    Raises DltTemplateError for a bad template, DltRenderError for missing, extra or
    invalid values, and TypeError when context is neither a sequence nor a mapping.
    """
    _check_limit(max_var_length)
    placeholders = _checked(template_body)
    values = _collect(placeholders, context)
    parts: list[str] = []
    pos = 0
    for position, (placeholder, value) in enumerate(
        zip(placeholders, values, strict=True), start=1
    ):
        problem = _problem(position, placeholder.kind, value, max_var_length)
        if problem is not None:
            raise DltRenderError(problem, position=position, kind=placeholder.kind, value=value)
        parts += (template_body[pos : placeholder.start], value)
        pos = placeholder.end
    parts.append(template_body[pos:])
    text = "".join(parts)
    if len(text) > MAX_BODY_LENGTH:
        raise DltRenderError(
            f"rendered SMS is {len(text)} characters long; Exotel accepts at most {MAX_BODY_LENGTH}"
        )
    return text


def _split_strict(
    chunks: list[str], text: str, max_len: int, accept: Callable[[int, str], bool]
) -> list[str] | None:
    """Split text into values of 1..max_len characters that ``accept`` approves, with the
    fixed ``chunks`` exactly between them; shortest values first, like a lazy regex.

    Depth-first with memoised dead ends and a length window, so a near-miss costs
    polynomial time where a backtracking regex with adjacent groups can go exponential.
    """
    count = len(chunks) - 1
    size = len(text)
    # Fixed characters still to come after value ``index``.
    after = [sum(map(len, chunks[index + 1 :])) for index in range(count + 1)]
    dead: set[tuple[int, int]] = set()

    def walk(index: int, pos: int) -> list[str] | None:
        if index == count:
            return [] if pos == size else None
        left = size - pos - after[index]
        if not count - index <= left <= (count - index) * max_len or (index, pos) in dead:
            return None
        tail = chunks[index + 1]
        for end in range(pos + 1, min(pos + max_len, size) + 1):
            value = text[pos:end]
            if text.startswith(tail, end) and accept(index, value):
                rest = walk(index + 1, end + len(tail))
                if rest is not None:
                    return [value, *rest]
        dead.add((index, pos))
        return None

    return walk(0, len(chunks[0])) if text.startswith(chunks[0]) else None


def _split_loose(chunks: list[str], text: str, min_len: int) -> list[str] | None:
    """Split text around the fixed ``chunks`` with values of any length >= min_len.

    Placing each chunk at its leftmost possible spot is optimal when values have only
    a lower bound, so one linear pass decides it.
    """
    first, last = chunks[0], chunks[-1]
    if len(chunks) == 1:
        return [] if text == first else None
    stop = len(text) - len(last)
    if not (text.startswith(first) and text.endswith(last)) or stop < len(first):
        return None
    values: list[str] = []
    pos = len(first)
    for chunk in chunks[1:-1]:
        found = text.find(chunk, pos + min_len, stop)
        if found < 0:
            return None
        values.append(text[pos:found])
        pos = found + len(chunk)
    if stop - pos < min_len:
        return None
    values.append(text[pos:stop])
    return values


def match(
    template_body: str, text: str, *, max_var_length: int = DEFAULT_MAX_VAR_LENGTH
) -> MatchResult:
    """Check ``text`` against the template exactly as DLT scrubbing would.

    Fixed wording must be identical (whitespace included); each placeholder takes
    1..max_var_length characters of its kind. Raises DltTemplateError for a bad template.
    """
    _check_limit(max_var_length)
    placeholders = _checked(template_body)
    chunks: list[str] = []
    pos = 0
    for placeholder in placeholders:
        chunks.append(template_body[pos : placeholder.start])
        pos = placeholder.end
    chunks.append(template_body[pos:])
    kinds = [placeholder.kind for placeholder in placeholders]

    def strict_accept(index: int, value: str) -> bool:
        return _problem(index + 1, kinds[index], value, max_var_length) is None

    # Placing the wording with unconstrained values first is linear, and it tells a
    # wording mismatch apart from a bad value. Non-empty values are tried first so a
    # reason about content beats "is empty".
    loose = _split_loose(chunks, text, 1) or _split_loose(chunks, text, 0)
    if loose is None:
        return MatchResult(False, (), "text does not match the template's fixed wording")
    values = _split_strict(chunks, text, max_var_length, strict_accept)
    if values is not None:
        return MatchResult(True, tuple(values), "")
    # Strict search is exhaustive, so some value in the loose split breaks a rule.
    for index, value in enumerate(loose):
        problem = _problem(index + 1, kinds[index], value, max_var_length)
        if problem is not None:
            return MatchResult(False, (), problem)
    return MatchResult(False, (), "text does not match the template")  # pragma: no cover
