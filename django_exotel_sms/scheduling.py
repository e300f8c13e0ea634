"""When a message may leave: ``send_at``, sending windows and expiry.

Nothing here waits in a Celery countdown. A scheduled or deferred row stays ``pending``
with its "not before" (``next_attempt_at``) set; the claim (``gate.due``) skips it until
then, and the ``release_due`` beat task (or reconciliation) wakes a sender for what has
become due. So a million scheduled messages cost rows and an index, no broker memory.

Sending windows (``EXOTEL_SMS['SENDING_WINDOWS']``) are hours of the day per SMS type and
recipient region. A row a closed window governs is never claimed; it is deferred to the
window's next opening, visibly (``status_reason`` "window" and ``next_attempt_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import status
from .conf import SETTINGS_NAME, get_settings

if TYPE_CHECKING:
    from .models import SmsMessage, SmsTemplate

# status_reason of a pending row waiting for its time.
SCHEDULED = "scheduled"
WINDOW = "window"
HELD_REASONS = (SCHEDULED, WINDOW)

_WINDOW_KEYS = frozenset({"sms_types", "regions", "start", "end", "timezone"})


def sms_type_of(value: str | None) -> str:
    """Exotel treats a message without SmsType as transactional; so do the windows."""
    return value or "transactional"


@dataclass(frozen=True)
class Window:
    """Hours (``start`` <= local time < ``end``) when some messages may leave.

    ``end`` before ``start`` spans midnight (22:00-06:00). ``prefixes`` are the country
    calling codes of the regions it governs (``None``: every number).
    """

    sms_types: frozenset[str]
    prefixes: tuple[str, ...] | None
    start: time
    end: time
    tz: ZoneInfo

    def _local(self, now: datetime) -> datetime:
        return now.astimezone(self.tz)

    def is_open(self, now: datetime) -> bool:
        t = self._local(now).time()
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_opening(self, now: datetime) -> datetime:
        """The first opening at or after ``now`` (``now`` itself when it opens then)."""
        local = self._local(now)
        for days in range(3):
            day = local.date() + timedelta(days=days)
            opening = datetime.combine(day, self.start, tzinfo=self.tz)
            if opening >= local:
                return opening.astimezone(now.tzinfo)
        raise AssertionError("unreachable: an opening falls within two days")

    def governs(self, sms_type: str | None, number: str) -> bool:
        if sms_type_of(sms_type) not in self.sms_types:
            return False
        return self.prefixes is None or number.startswith(self.prefixes)

    def rows(self) -> Q:
        """The rows this window governs, as a filter."""
        q = Q(sms_type__in=sorted(self.sms_types))
        if "transactional" in self.sms_types:
            q |= Q(sms_type="")
        if self.prefixes is not None:
            by_prefix = Q()
            for prefix in self.prefixes:
                by_prefix |= Q(to__startswith=prefix)
            q &= by_prefix
        return q


def _parse_time(value: Any, where: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise ImproperlyConfigured(
            f"{where} must be a time such as '10:00'; got {value!r}."
        ) from None


def parse_windows(value: Any) -> list[Window]:
    """Read ``SENDING_WINDOWS``; ImproperlyConfigured naming the entry and key that is wrong."""
    name = f"{SETTINGS_NAME}['SENDING_WINDOWS']"
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ImproperlyConfigured(f"{name} must be a list of windows (dicts).")
    windows = []
    for i, entry in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(entry, Mapping):
            raise ImproperlyConfigured(f"{where} must be a dict.")
        unknown = set(entry) - _WINDOW_KEYS
        if unknown:
            raise ImproperlyConfigured(f"{where} has unknown key(s) {', '.join(sorted(unknown))}.")
        types = entry.get("sms_types") or []
        if isinstance(types, str) or not types:
            raise ImproperlyConfigured(f"{where}['sms_types'] must be a non-empty list.")
        from .compose import SMS_TYPES

        bad = [t for t in types if t not in SMS_TYPES]
        if bad:
            raise ImproperlyConfigured(
                f"{where}['sms_types'] has unknown SMS type(s) {bad}; use {', '.join(SMS_TYPES)}."
            )
        regions = entry.get("regions", ["*"])
        if isinstance(regions, str) or not regions:
            raise ImproperlyConfigured(f"{where}['regions'] must be a non-empty list.")
        prefixes: list[str] | None = []
        for region in regions:
            if region == "*":
                prefixes = None
                break
            code = phonenumbers.country_code_for_region(str(region).upper())
            if not code:
                raise ImproperlyConfigured(
                    f"{where}['regions'] has {region!r}: use ISO region codes such as 'IN', "
                    "or '*' for every number."
                )
            assert prefixes is not None
            prefixes.append(f"+{code}")
        start = _parse_time(entry.get("start"), f"{where}['start']")
        end = _parse_time(entry.get("end"), f"{where}['end']")
        if start == end:
            raise ImproperlyConfigured(f"{where}: start and end must differ.")
        try:
            tz = ZoneInfo(str(entry.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            raise ImproperlyConfigured(
                f"{where}['timezone'] is not a known time zone: {entry.get('timezone')!r}."
            ) from None
        windows.append(
            Window(
                sms_types=frozenset(types),
                prefixes=None if prefixes is None else tuple(sorted(set(prefixes))),
                start=start,
                end=end,
                tz=tz,
            )
        )
    return windows


def parse_valid_for(value: Any) -> dict[str, timedelta]:
    """Read ``VALID_FOR`` (SMS type -> seconds or timedelta; None: never expires)."""
    name = f"{SETTINGS_NAME}['VALID_FOR']"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"{name} must be a dict of SMS type -> seconds.")
    from .compose import SMS_TYPES

    out = {}
    for sms_type, duration in value.items():
        if sms_type not in SMS_TYPES:
            raise ImproperlyConfigured(
                f"{name} has unknown SMS type {sms_type!r}; use {', '.join(SMS_TYPES)}."
            )
        if duration is None:
            continue
        delta = duration if isinstance(duration, timedelta) else _seconds(duration)
        if delta is None or delta <= timedelta(0):
            raise ImproperlyConfigured(
                f"{name}[{sms_type!r}] must be a positive number of seconds or a timedelta."
            )
        out[sms_type] = delta
    return out


def _seconds(value: Any) -> timedelta | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return timedelta(seconds=value)


_cache: tuple[object, list[Window], dict[str, timedelta]] | None = None


def _config() -> tuple[list[Window], dict[str, timedelta]]:
    global _cache
    settings = get_settings()
    if _cache is None or _cache[0] is not settings:
        _cache = (
            settings,
            parse_windows(settings.sending_windows),
            parse_valid_for(settings.valid_for),
        )
    return _cache[1], _cache[2]


def windows() -> list[Window]:
    return _config()[0]


# -- the claim's side: set-based ---------------------------------------------------------


def closed(now: datetime) -> Q | None:
    """Rows a window closed at ``now`` governs (None when every window is open)."""
    q: Q | None = None
    for window in windows():
        if not window.is_open(now):
            q = window.rows() if q is None else q | window.rows()
    return q


def deferred_until(sms_type: str | None, numbers: Iterable[str], now: datetime) -> datetime | None:
    """When messages of ``sms_type`` to ``numbers`` composed now may leave: None for at once,
    else the latest next opening of a closed window that governs one of them."""
    closed_windows = [w for w in windows() if not w.is_open(now)]
    if not closed_windows:
        return None
    latest: datetime | None = None
    for number in numbers:
        for window in closed_windows:
            if window.governs(sms_type, number):
                opening = window.next_opening(now)
                latest = opening if latest is None or opening > latest else latest
        if latest is not None and len(closed_windows) == 1:
            break  # one window: every governed number opens at the same time
    return latest


def defer(qs: QuerySet[SmsMessage], now: datetime) -> int:
    """Set the next opening as "not before" of pending rows a closed window holds.

    One UPDATE per closed window; a row under several closed windows ends with the
    latest opening. The claim skips these rows anyway: this makes the wait visible.
    """
    moved = 0
    for window in windows():
        if window.is_open(now):
            continue
        opening = window.next_opening(now)
        moved += (
            qs.filter(window.rows(), status=status.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=opening))
            .update(next_attempt_at=opening, status_reason=WINDOW, updated_at=now)
        )
    return moved


# -- the compose side: one row -----------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """What compose stores for a message's timing."""

    send_at: datetime | None
    expires_at: datetime | None
    next_attempt_at: datetime | None
    status_reason: str

    def fields(self) -> dict[str, Any]:
        return {
            "send_at": self.send_at,
            "expires_at": self.expires_at,
            "next_attempt_at": self.next_attempt_at,
            "status_reason": self.status_reason,
        }


def _aware(value: Any, key: str, errors: dict[str, list[str]]) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        parsed = parse_datetime(value)
        if parsed is None:
            errors.setdefault(key, []).append(f"{key} is not a date and time: {value!r}.")
            return None
        value = parsed
    if not isinstance(value, datetime):
        errors.setdefault(key, []).append(f"{key} must be a datetime.")
        return None
    if timezone.is_naive(value):
        errors.setdefault(key, []).append(
            f"{key} must be an aware datetime (with a time zone), got {value.isoformat()}."
        )
        return None
    return value


def plan(
    number: str,
    sms_type: str | None,
    *,
    send_at: Any = None,
    expires_at: Any = None,
    valid_for: timedelta | float | None = None,
    template: SmsTemplate | None = None,
    now: datetime | None = None,
) -> tuple[Timing | None, dict[str, list[str]]]:
    """A message's timing, or the errors (field -> texts) that stop it being saved.

    ``expires_at`` wins over ``valid_for``, which wins over the template's ``valid_for``
    and then ``VALID_FOR`` for the SMS type; durations count from ``send_at`` (or now).
    """
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    start = _aware(send_at, "send_at", errors)
    expiry = _aware(expires_at, "expires_at", errors)
    if valid_for is not None and not isinstance(valid_for, timedelta):
        as_delta = _seconds(valid_for)
        if as_delta is None:
            errors.setdefault("valid_for", []).append(
                "valid_for must be a timedelta or a number of seconds."
            )
        valid_for = as_delta
    if valid_for is not None and valid_for <= timedelta(0):
        errors.setdefault("valid_for", []).append("valid_for must be positive.")
    if errors:
        return None, errors
    if start is not None and start <= now:
        start = None  # a time already past: send now, like an unscheduled message
    base = start or now
    if expiry is None:
        duration = valid_for
        if duration is None and template is not None:
            duration = template.valid_for
        if duration is None:
            duration = _config()[1].get(sms_type_of(sms_type))
        if duration is not None:
            expiry = base + duration
    if expiry is not None and expiry <= base:
        key = "expires_at" if expires_at is not None else "valid_for"
        errors[key] = [
            f"The message would expire ({expiry.isoformat()}) before it is due "
            f"({base.isoformat()})."
        ]
        return None, errors
    not_before, reason = start, (SCHEDULED if start else "")
    for window in windows():
        if window.governs(sms_type, number) and not window.is_open(base):
            opening = window.next_opening(base)
            if not_before is None or opening > not_before:
                not_before, reason = opening, WINDOW
    return Timing(start, expiry, not_before, reason), errors


# -- release: what became due ------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    batches: frozenset[int]
    messages: frozenset[int]


def release(now: datetime | None = None, limit: int = 1000) -> Release:
    """Batches and single messages whose held rows became due; they are marked released.

    Only rows held for a time (``status_reason`` scheduled/window) are looked at, so a
    retry's backoff (whose task is already on its way) is left alone. Clearing the reason
    keeps the next tick from waking the same rows again; a wake-up lost on the way is
    caught by reconciliation, which resumes any due pending row.
    """
    from . import gate
    from .models import SmsMessage

    now = now or timezone.now()
    due = gate.due(SmsMessage.objects.filter(status_reason__in=HELD_REASONS), now)
    batches = set(
        due.filter(batch__isnull=False)
        .order_by()
        .values_list("batch_id", flat=True)
        .distinct()[:limit]
    )
    singles = set(
        due.filter(batch__isnull=True)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if batches:
        gate.due(SmsMessage.objects.filter(batch_id__in=batches), now).filter(
            status_reason__in=HELD_REASONS
        ).update(status_reason="")
    if singles:
        SmsMessage.objects.filter(pk__in=singles, status=status.PENDING).update(status_reason="")
    return Release(frozenset(b for b in batches if b is not None), frozenset(singles))


def next_due(qs: QuerySet[SmsMessage], now: datetime, horizon: float) -> float | None:
    """Seconds until the earliest pending row of ``qs`` is due, if within ``horizon``.

    Beyond it the database holds the row and ``release_due`` wakes a sender: a task
    never waits in a long countdown.
    """
    due = (
        qs.filter(
            status=status.PENDING,
            next_attempt_at__isnull=False,
            next_attempt_at__lte=now + timedelta(seconds=horizon),
        )
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if due is None:
        return None
    return max(0.0, (due - now).total_seconds())
