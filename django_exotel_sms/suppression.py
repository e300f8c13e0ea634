"""Consent and safety before sending: who must not get a message, and why.

The send gate asks this module, at compose time (``managers``) and again at claim time
(``gate.screen``), which recipients to refuse. A refused message is saved and closed as
``suppressed`` with one of these reasons in ``status_reason``; it never reaches Exotel.

* the suppression list (:class:`~django_exotel_sms.models.Suppression`): opt-outs, DND,
  blacklists... for every SMS type or for promotional messages only; one set-based
  look-up per chunk of up to 100 recipients, never one per number;
* ``ALLOWED_RECIPIENTS`` (staging): anyone else is ``not_allowed``;
* the ``pre_send`` signal: a receiver raising :class:`SendVetoed` refuses a message;
* ``RECIPIENT_LIMITS``: per-recipient limits through the shared limiter (Redis). A single
  send over a limit raises :class:`RecipientLimitExceeded`; in a bulk the recipient is
  ``rate_limited``. Limits and vetoes are decided once, at compose time.

The list is also fed from Exotel's answers (:func:`learn`): the permanent failure codes
of ``SUPPRESSION_CODES`` suppress the number, some only after repeated failures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, router, transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from limits import RateLimitItem, parse

from . import phone, ratelimit, signals, status
from .conf import get_settings
from .models import SmsMessage, Suppression

if TYPE_CHECKING:
    from .models import SmsTemplate

__all__ = [
    "NOT_ALLOWED",
    "RATE_LIMITED",
    "VETOED",
    "RecipientLimitExceeded",
    "SendVetoed",
    "active",
    "is_allowed",
    "is_suppressed",
    "learn",
    "normalize",
    "refusals",
    "suppress",
    "unsuppress",
]

K = TypeVar("K")

# status_reason values besides the Suppression reasons (opt_out, dnd, blacklist, ...).
RATE_LIMITED = "rate_limited"
NOT_ALLOWED = "not_allowed"
VETOED = "vetoed"
PROMOTIONAL = "promotional"


class SendVetoed(Exception):
    """Raise from a ``pre_send`` receiver to refuse a message: it is saved ``suppressed``.

    ``reason`` (up to 32 characters) becomes the message's ``status_reason``.
    """

    def __init__(self, reason: str = VETOED) -> None:
        super().__init__(reason)
        self.reason = (str(reason) or VETOED)[:32]


class RecipientLimitExceeded(Exception):
    """A single send over a per-recipient limit (``RECIPIENT_LIMITS``); nothing was saved.

    ``retry_after`` is the number of seconds until the limit lets one more through.
    """

    def __init__(self, number: str, limit: str, retry_after: float) -> None:
        self.number = number
        self.limit = limit
        self.retry_after = max(0.0, retry_after)
        super().__init__(
            f"Too many messages to {number}: the limit {limit!r} allows the next one in "
            f"{self.retry_after:.0f} s."
        )


# -- the list -----------------------------------------------------------------------------


def normalize(number: str) -> str:
    """E.164 for any format the app accepts (``DEFAULT_REGION``); raises ``phone.InvalidNumber``."""
    return phone.normalize(number, get_settings().default_region)


def active(qs: QuerySet[Suppression], now: datetime | None = None) -> QuerySet[Suppression]:
    """The entries of ``qs`` that have not expired."""
    now = now or timezone.now()
    return qs.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))


def _check_choice(value: str, choices: Iterable[tuple[str, Any]], name: str) -> None:
    allowed = [c for c, _ in choices]
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")


def suppress(
    number: str,
    reason: str = Suppression.REASON_MANUAL,
    scope: str = Suppression.SCOPE_ALL,
    *,
    source: str = "api",
    note: str = "",
    expires_at: datetime | None = None,
) -> Suppression:
    """Stop sending to ``number`` (any format): for ``scope`` "all" or "promotional" only.

    Suppressing an already suppressed number and scope updates that entry.
    """
    _check_choice(reason, Suppression.REASON_CHOICES, "reason")
    _check_choice(scope, Suppression.SCOPE_CHOICES, "scope")
    entry, _ = Suppression.objects.update_or_create(
        number=normalize(number),
        scope=scope,
        defaults={
            "reason": reason,
            "source": source[:32],
            "note": note[:255],
            "expires_at": expires_at,
        },
    )
    return entry


def unsuppress(number: str, scope: str | None = None) -> int:
    """Send to ``number`` again (in ``scope``, or every scope); returns the entries removed."""
    qs = Suppression.objects.filter(number=normalize(number))
    if scope is not None:
        qs = qs.filter(scope=scope)
    return qs.delete()[0]


def is_suppressed(number: str, sms_type: str | None = None) -> bool:
    """True when a message of ``sms_type`` to ``number`` (any format) would be suppressed."""
    try:
        e164 = normalize(number)
    except phone.InvalidNumber:
        return False
    return bool(_listed([(0, e164, sms_type or "")], timezone.now()))


# -- deciding, set-based --------------------------------------------------------------------


@lru_cache(maxsize=8)
def _allow_list(
    entries: tuple[str, ...], region: str | None
) -> tuple[frozenset[str], tuple[str, ...]]:
    """``ALLOWED_RECIPIENTS`` as (exact E.164 numbers, prefixes); checks report bad entries."""
    numbers: set[str] = set()
    prefixes: list[str] = []
    for entry in entries:
        text = str(entry).strip()
        if text.endswith("*"):
            prefixes.append(text.rstrip("*").replace(" ", ""))
            continue
        try:
            numbers.add(phone.normalize(text, region))
        except phone.InvalidNumber:
            continue
    return frozenset(numbers), tuple(prefixes)


def is_allowed(number: str) -> bool:
    """False when ``ALLOWED_RECIPIENTS`` is set and ``number`` (E.164) matches none of it."""
    s = get_settings()
    if s.allowed_recipients is None:
        return True
    numbers, prefixes = _allow_list(s.allowed_recipients, s.default_region)
    return number in numbers or number.startswith(prefixes)


def _listed(items: Sequence[tuple[K, str, str]], now: datetime) -> dict[K, str]:
    """``{key: reason}`` for the suppressed ``(key, e164, sms_type)`` items: one query."""
    if not items:
        return {}
    found: dict[tuple[str, str], str] = {}
    rows = active(Suppression.objects.filter(number__in={n for _, n, _ in items}), now)
    for number, scope, why in rows.values_list("number", "scope", "reason"):
        found[(number, scope)] = why
    refused: dict[K, str] = {}
    for key, number, sms_type in items:
        reason = found.get((number, Suppression.SCOPE_ALL))
        if reason is None and sms_type == PROMOTIONAL:
            reason = found.get((number, Suppression.SCOPE_PROMOTIONAL))
        if reason is not None:
            refused[key] = reason
    return refused


def refusals(items: Sequence[tuple[K, str, str]], now: datetime | None = None) -> dict[K, str]:
    """Which ``(key, e164, sms_type)`` items the allow-list or the list refuse, and why.

    At most one database query, whatever the number of items.
    """
    refused: dict[K, str] = {}
    rest = []
    for item in items:
        if is_allowed(item[1]):
            rest.append(item)
        else:
            refused[item[0]] = NOT_ALLOWED
    refused.update(_listed(rest, now or timezone.now()))
    return refused


# What the claim reads with its rows (``claimed_fields``), so screening costs no query.
CLAIM_FIELDS = ("suppressed_all", "suppressed_promotional")


def claimed_fields(qs: QuerySet[SmsMessage], now: datetime) -> QuerySet[SmsMessage]:
    """``qs`` with each row's active suppression reasons, per scope, as correlated subqueries."""
    entries = active(Suppression.objects.filter(number=OuterRef("to")), now)
    return qs.annotate(
        suppressed_all=Subquery(entries.filter(scope=Suppression.SCOPE_ALL).values("reason")[:1]),
        suppressed_promotional=Subquery(
            entries.filter(scope=Suppression.SCOPE_PROMOTIONAL).values("reason")[:1]
        ),
    )


def screen(rows: Sequence[Mapping[str, Any]], now: datetime) -> dict[int, str]:
    """The claim's check of claimed rows: what changed since compose time also holds.

    The rows carry ``CLAIM_FIELDS`` (read by the claim's own query); no query here.
    """
    refused: dict[int, str] = {}
    for row in rows:
        reason = row["suppressed_all"]
        if reason is None and row["sms_type"] == PROMOTIONAL:
            reason = row["suppressed_promotional"]
        if not is_allowed(row["to"]):
            reason = NOT_ALLOWED
        if reason:
            refused[row["pk"]] = reason
    return refused


# -- compose time: veto and per-recipient limits ----------------------------------------------


def _veto(message: SmsMessage) -> str | None:
    try:
        signals.pre_send.send(sender=SmsMessage, message=message)
    except SendVetoed as exc:
        return exc.reason
    return None


@lru_cache(maxsize=64)
def _parse_limit(text: str) -> RateLimitItem:
    return parse(text)


def _limits_for(template: SmsTemplate | None, sms_type: str) -> list[tuple[str, RateLimitItem]]:
    configured = get_settings().recipient_limits
    if not configured:
        return []
    keys = ["*", sms_type or "transactional"]
    if template is not None:
        keys.append(f"template:{template.name}")
    return [(key, _parse_limit(configured[key])) for key in keys if key in configured]


def _over_limit(message: SmsMessage) -> tuple[str, float] | None:
    """Count this message against its recipient's limits; ``(limit, retry_after)`` if over."""
    wanted = _limits_for(message.template, message.sms_type)
    if not wanted:
        return None
    over = ratelimit.take_all([(item, ("recipient", key, message.to)) for key, item in wanted])
    if over is None:
        return None
    index, retry_after = over
    key, item = wanted[index]
    return f"{key}: {item}", retry_after


def decide(messages: Sequence[SmsMessage], *, single: bool = False) -> dict[int, str]:
    """Compose-time refusals for unsaved messages, as ``{index: reason}``.

    Order: allow-list and suppression list (one query), then ``pre_send`` vetoes, then
    per-recipient limits, so a refused message never uses up a recipient's quota. With
    ``single=True`` a message over a limit raises :class:`RecipientLimitExceeded`.
    """
    refused = refusals([(i, m.to, m.sms_type) for i, m in enumerate(messages)])
    vetoing = signals.pre_send.has_listeners()
    for index, message in enumerate(messages):
        if index in refused:
            continue
        reason = _veto(message) if vetoing else None
        if reason is None:
            over = _over_limit(message)
            if over is not None:
                if single:
                    raise RecipientLimitExceeded(message.to, *over)
                reason = RATE_LIMITED
        if reason is not None:
            refused[index] = reason
    return refused


# -- learning from Exotel's answers -------------------------------------------------------


def learn(number: str, code: int | None, *, source: str, using: str | None = None) -> bool:
    """A message to ``number`` failed with ``code``: suppress it if ``SUPPRESSION_CODES`` says so.

    Codes with a threshold above 1 suppress only once that many messages to the number
    failed with a code of the same reason. An existing entry is kept as it is. True when
    the number is (now) suppressed by this rule.
    """
    codes = get_settings().suppression_codes
    if code is None or code not in codes or not number:
        return False
    reason, scope, threshold = codes[code]
    db = using or router.db_for_write(Suppression)
    if threshold > 1:
        same = [c for c, rule in codes.items() if rule[0] == reason]
        failures = (
            SmsMessage.objects.using(db)
            .filter(to=number, status__in=status.FAILURE_STATUSES, detailed_status_code__in=same)
            .count()
        )
        if failures < threshold:
            return False
    try:
        with transaction.atomic(using=db):
            Suppression.objects.using(db).get_or_create(
                number=number,
                scope=scope,
                defaults={"reason": reason, "source": source[:32], "note": f"Exotel {code}"},
            )
    except IntegrityError:  # added meanwhile by a concurrent report: already suppressed
        pass
    return True
