"""Claim -> transport -> record: the one path that tasks and synchronous sends share.

* claim: a short transaction moves up to 100 pending rows to ``submitting`` under a
  fresh token (``select_for_update(skip_locked=True)`` where the database has it), so
  two workers never hold the same row;
* transport: one HTTP request per chunk through the backend, outside any transaction,
  after the account's shared rate limit grants a slot;
* record: one conditional, set-based UPDATE writes every row's outcome, only where the
  row is still ours; one INSERT writes the status history.

Queries per chunk are constant, whatever the chunk holds.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models import F, Field, QuerySet
from django.utils import timezone

from . import callbacks, encoding, gate, ratelimit, scheduling, signals, status
from .backends import get_backend
from .client import BulkResult, SmsResult
from .conf import get_settings
from .exceptions import (
    ExotelAPIError,
    ExotelConnectionError,
    ExotelError,
    ExotelResponseError,
)
from .models import SmsBatch, SmsMessage, StatusEvent

logger = logging.getLogger(__name__)

# What a worker reads of a claimed row to build the request.
ROW_FIELDS = (
    "pk",
    "to",
    "body",
    "sender",
    "dlt_template_id",
    "dlt_entity_id",
    "sms_type",
    "encoding",
    "priority",
    "custom_field",
    "shorten_urls",
    "shorten_url_params",
    "account",
    "batch_id",
    "attempts",
)


@dataclass
class Outcome:
    """What one run did; ``retry_after`` says when to come back for rows left pending."""

    claimed: int = 0
    accepted: int = 0
    rejected: int = 0
    uncertain: int = 0
    released: int = 0
    requests: int = 0
    retry_after: float | None = None
    more: bool = False

    def add(self, other: Outcome) -> None:
        for name in ("claimed", "accepted", "rejected", "uncertain", "released", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, other.retry_after)


@dataclass
class Claim:
    token: uuid.UUID
    rows: list[dict[str, Any]]
    batch: SmsBatch | None = None
    previous: dict[int, str] = field(default_factory=dict)


def _db() -> str:
    return router.db_for_write(SmsMessage)


def _claim(base: QuerySet[SmsMessage], limit: int) -> Claim | None:
    db = _db()
    token = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic(using=db):
        qs = gate.due(base.using(db), now).order_by("pk")
        if connections[db].features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True)
            if connections[db].vendor == "mysql":
                # InnoDB locks every row a filesort reads, so a sorted claim could lock the whole
                # batch and leave concurrent claims empty; unsorted it locks only the rows it takes.
                qs = qs.order_by()
        ids = list(qs.values_list("pk", flat=True)[:limit])
        if ids:
            # The status condition makes the claim safe on databases without row locks too.
            SmsMessage.objects.using(db).filter(pk__in=ids, status=status.PENDING).update(
                status=status.SUBMITTING,
                claim_token=token,
                claimed_at=now,
                request_started_at=None,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
    if not ids:
        # Nothing claimable: close what expired meanwhile (the claim never takes it anyway).
        gate.expire(base.using(db), now)
        return None
    rows = list(
        SmsMessage.objects.using(db)
        .filter(claim_token=token, status=status.SUBMITTING)
        .order_by("pk")
        .values(*ROW_FIELDS)
    )
    refused = gate.screen(rows, now)
    if refused:
        gate.close(
            refused,
            status.SUPPRESSED,
            from_statuses=(status.SUBMITTING,),
            claim_token=token,
            note="refused at claim",
        )
        rows = [r for r in rows if r["pk"] not in refused]
    if not rows:
        return None
    return Claim(token=token, rows=rows, previous={r["pk"]: status.SUBMITTING for r in rows})


def _mark_request_started(claim: Claim, pks: list[int]) -> None:
    # A stale claim without this mark never reached Exotel and may be sent again safely.
    SmsMessage.objects.using(_db()).filter(
        pk__in=pks, claim_token=claim.token, status=status.SUBMITTING
    ).update(request_started_at=timezone.now())


# -- building requests ------------------------------------------------------------------


def _options(row: dict[str, Any], *, callback: str | None, per_message: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "status_callback": callback,
        "dlt_entity_id": row["dlt_entity_id"] or None,
        "priority": row["priority"] or None,
        "custom_field": row["custom_field"] or None,
    }
    if row["shorten_urls"] is not None:
        options["shorten_url"] = row["shorten_urls"]
        params = dict(row["shorten_url_params"] or {})
        if (
            row["shorten_urls"]
            and params.get("tracking")
            and "click_tracking_callback_url" not in params
        ):
            kind, pk = (
                (callbacks.BATCH, row["batch_id"])
                if row["batch_id"]
                else (callbacks.MESSAGE, row["pk"])
            )
            url = callbacks.click_callback_url(kind, pk)
            if url:
                params["click_tracking_callback_url"] = url
        options["shorten_url_params"] = params or None
    if per_message:
        # Exotel detects each message's encoding unless the request forces one.
        options["encoding_type"] = _forced_encoding(row)
    else:
        options["dlt_template_id"] = row["dlt_template_id"] or None
        options["sms_type"] = row["sms_type"] or None
        options["encoding_type"] = row["encoding"] or None
    return {k: v for k, v in options.items() if v is not None}


def _forced_encoding(row: dict[str, Any]) -> str | None:
    """The encoding a caller forced (stored, but not what the text alone would give)."""
    if row["encoding"] and row["encoding"] != encoding.detect_encoding(row["body"]):
        return str(row["encoding"])
    return None


def _request_key(row: dict[str, Any], dynamic: bool) -> tuple[Any, ...]:
    shared = (
        row["dlt_entity_id"],
        row["priority"],
        row["custom_field"],
        row["shorten_urls"],
        repr(row["shorten_url_params"]),
        row["account"],
    )
    if dynamic:
        return (*shared, _forced_encoding(row))
    return (
        *shared,
        row["body"],
        row["sender"],
        row["dlt_template_id"],
        row["sms_type"],
        row["encoding"],
    )


def _transport(
    rows: Sequence[dict[str, Any]], batch: SmsBatch | None
) -> Callable[[], list[SmsResult]]:
    """A thunk doing exactly one HTTP request for these rows (all share one request key)."""
    first = rows[0]
    backend = get_backend(first["account"])
    if batch is None:
        callback = callbacks.status_callback_url(callbacks.MESSAGE, first["pk"])
    else:
        callback = callbacks.status_callback_url(callbacks.BATCH, batch.pk)

    if batch is None:
        options = _options(first, callback=callback, per_message=False)
        return lambda: [backend.send(first["to"], first["body"], first["sender"], **options)]
    if batch.kind == SmsBatch.KIND_STATIC:
        options = _options(first, callback=callback, per_message=False)
        numbers = [r["to"] for r in rows]

        def static() -> list[SmsResult]:
            result: BulkResult = backend.send_bulk(
                numbers, first["body"], first["sender"], **options
            )
            return list(result.results)

        return static
    options = _options(first, callback=callback, per_message=True)
    messages = [
        {
            k: v
            for k, v in {
                "to": r["to"],
                "body": r["body"],
                "sender": r["sender"] or None,
                "sms_type": r["sms_type"] or None,
                "dlt_template_id": r["dlt_template_id"] or None,
            }.items()
            if v is not None
        }
        for r in rows
    ]

    def dynamic() -> list[SmsResult]:
        return list(backend.send_dynamic_bulk(messages, None, **options).results)

    return dynamic


# -- recording --------------------------------------------------------------------------


def _result_fields(result: SmsResult, now: Any) -> dict[str, Any]:
    reported = status.normalize_exotel_status(result.status)
    if result.sid and reported != status.FAILED:
        new = reported or status.QUEUED
        if not status.can_advance(status.SUBMITTING, new):
            new = status.QUEUED
        return {
            "sid": result.sid,
            "status": new,
            "detailed_status_code": result.detailed_status_code,
            "detailed_status": result.detailed_status or "",
            "sms_units": result.sms_units,
            "price": result.price,
            "submitted_at": now,
            "sent_at": result.date_sent,
            "error_code": None,
            "error_message": "",
        }
    info = status.describe_code(result.detailed_status_code)
    text = result.detailed_status or (info.name if info else "") or "Rejected by Exotel"
    return {
        "sid": result.sid,
        "status": status.REJECTED,
        "detailed_status_code": result.detailed_status_code,
        "detailed_status": result.detailed_status or (info.name if info else ""),
        "error_code": result.detailed_status_code,
        "error_message": text,
    }


def _update_rows(
    db: str,
    rows: dict[int, dict[str, Any]],
    token: uuid.UUID,
    from_statuses: Sequence[str],
) -> int:
    """One set-based UPDATE writing each row's own values, only where the row is still ours.

    A field with one value for every row is set plainly; fields that differ (the Sid,
    mostly) become ``CASE id WHEN .. THEN .. END``. Written as SQL because building 100
    ORM ``When`` expressions per field costs more than the database round trip.
    """
    conn = connections[db]
    meta = SmsMessage._meta
    quote = conn.ops.quote_name
    pk_column = quote(meta.pk.column)
    sets: list[str] = []
    params: list[Any] = []
    names = sorted({name for values in rows.values() for name in values} | {"updated_at"})
    now = timezone.now()
    for name in names:
        model_field = meta.get_field(name)
        assert isinstance(model_field, Field)
        column = quote(str(model_field.column))

        def prep(value: Any, f: Field[Any, Any] = model_field) -> Any:
            return f.get_db_prep_save(value, connection=conn)

        values = (
            [now] * len(rows)
            if name == "updated_at"
            else [row[name] for row in rows.values() if name in row]
        )
        if len(values) == len(rows) and all(v == values[0] for v in values):
            sets.append(f"{column} = %s")
            params.append(prep(values[0]))
            continue
        whens = []
        for pk, row in rows.items():
            if name in row:
                whens.append("WHEN %s THEN %s")
                params.extend([pk, prep(row[name])])
        sets.append(f"{column} = CASE {pk_column} {' '.join(whens)} ELSE {column} END")
    ids = list(rows)
    # Only quoted identifiers and placeholders are interpolated; every value is a parameter.
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(sets)} "  # noqa: S608
        f"WHERE {pk_column} IN ({', '.join(['%s'] * len(ids))}) "
        f"AND {quote('claim_token')} = %s "
        f"AND {quote('status')} IN ({', '.join(['%s'] * len(from_statuses))})"
    )
    token_field = meta.get_field("claim_token")
    assert isinstance(token_field, Field)
    params.extend(ids)
    params.append(token_field.get_db_prep_value(token, connection=conn))
    params.extend(from_statuses)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _apply(
    claim: Claim,
    per_row: dict[int, dict[str, Any]],
    *,
    source: str,
    note: str = "",
    from_statuses: Iterable[str] = (status.SUBMITTING,),
) -> list[int]:
    """Write each still-owned row's outcome in one UPDATE; history in one INSERT."""
    if not per_row:
        return []
    db = _db()
    with transaction.atomic(using=db):
        owned = dict(
            SmsMessage.objects.using(db)
            .select_for_update()
            .filter(pk__in=list(per_row), claim_token=claim.token, status__in=list(from_statuses))
            .values_list("pk", "status")
        )
        if len(owned) < len(per_row):
            logger.warning(
                "%d claimed message(s) were taken over before their outcome was recorded; "
                "raise EXOTEL_SMS['CLAIM_TIMEOUT'] above the longest request time.",
                len(per_row) - len(owned),
            )
        if not owned:
            return []
        rows = {pk: per_row[pk] for pk in owned}
        _update_rows(db, rows, claim.token, list(from_statuses))
        StatusEvent.objects.using(db).bulk_create(
            [
                StatusEvent(
                    message_id=pk,
                    status=values["status"],
                    detailed_status_code=values.get("detailed_status_code"),
                    detailed_status=(values.get("detailed_status") or "")[:64],
                    source=source,
                    note=note[:255],
                )
                for pk, values in rows.items()
            ]
        )
        signals.notify_after_commit(
            ((pk, owned[pk], values["status"], source) for pk, values in rows.items()),
            using=db,
        )
    return list(owned)


def _record_results(
    claim: Claim, rows: Sequence[dict[str, Any]], results: list[SmsResult]
) -> Outcome:
    now = timezone.now()
    outcome = Outcome(requests=1)
    per_row: dict[int, dict[str, Any]] = {}
    for row, result in zip(rows, results, strict=False):
        per_row[row["pk"]] = _result_fields(result, now)
    # Exotel answers one entry per recipient in request order; a short answer leaves the
    # rest unknown rather than guessed.
    missing = [row["pk"] for row in rows[len(results) :]]
    _apply(claim, per_row, source=StatusEvent.SOURCE_API)
    for values in per_row.values():
        if values["status"] == status.REJECTED:
            outcome.rejected += 1
        else:
            outcome.accepted += 1
    if missing:
        outcome.add(_unknown(claim, missing, "Exotel's answer had fewer entries than recipients"))
    return outcome


def _backoff(attempts: int, retry_after: float | None) -> float:
    s = get_settings()
    delay = min(s.retry_backoff_max, s.retry_backoff ** max(attempts, 1))
    delay *= random.uniform(0.5, 1.5)  # jitter: workers throttled together come back apart
    if retry_after:
        delay = max(delay, retry_after)
    return min(delay, s.retry_backoff_max)


def _release(
    claim: Claim,
    pks: list[int],
    exc: ExotelError,
    retry_after: float | None,
    *,
    count: bool = True,
) -> Outcome:
    """Exotel certainly did not take these: back to pending, or failed when out of attempts.

    ``count=False`` gives the attempt back (the request was never made).
    """
    s = get_settings()
    wanted = set(pks)
    attempts = {r["pk"]: r["attempts"] for r in claim.rows if r["pk"] in wanted}
    give_up = {pk for pk, n in attempts.items() if count and n >= s.max_attempts}
    retry = [pk for pk in pks if pk not in give_up]
    code = getattr(exc, "code", None)
    delay = _backoff(max(attempts.values(), default=1), retry_after)
    outcome = Outcome(requests=1)
    if retry:
        outcome.released = (
            SmsMessage.objects.using(_db())
            .filter(pk__in=retry, claim_token=claim.token, status=status.SUBMITTING)
            .update(
                status=status.PENDING,
                claim_token=None,
                request_started_at=None,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
                error_code=code,
                error_message=str(exc)[:1000],
                attempts=F("attempts") if count else F("attempts") - 1,
                updated_at=timezone.now(),
            )
        )
        outcome.retry_after = delay
    if give_up:
        fields = {
            "status": status.FAILED,
            "error_code": code,
            "error_message": f"Gave up after {s.max_attempts} attempts: {exc}"[:1000],
        }
        _apply(
            claim,
            {pk: dict(fields) for pk in give_up},
            source=StatusEvent.SOURCE_LOCAL,
            note="retries exhausted",
        )
        outcome.rejected += len(give_up)
    return outcome


def _reject(claim: Claim, pks: list[int], exc: ExotelError) -> Outcome:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    fields = {"status": status.REJECTED, "error_code": code, "error_message": str(message)[:1000]}
    _apply(
        claim, {pk: dict(fields) for pk in pks}, source=StatusEvent.SOURCE_API, note=str(exc)[:255]
    )
    return Outcome(requests=1, rejected=len(pks))


def _unknown(claim: Claim, pks: list[int], reason: str) -> Outcome:
    """Exotel may or may not have taken these. Default: never resend (at-most-once)."""
    if get_settings().at_least_once:
        n = (
            SmsMessage.objects.using(_db())
            .filter(pk__in=pks, claim_token=claim.token, status=status.SUBMITTING)
            .update(
                status=status.PENDING,
                claim_token=None,
                request_started_at=None,
                error_message=f"Resending (at-least-once): {reason}"[:1000],
                updated_at=timezone.now(),
            )
        )
        return Outcome(requests=1, released=n, retry_after=get_settings().retry_backoff)
    fields = {"status": status.UNCERTAIN, "error_message": reason[:1000]}
    _apply(claim, {pk: dict(fields) for pk in pks}, source=StatusEvent.SOURCE_LOCAL, note=reason)
    return Outcome(requests=1, uncertain=len(pks))


def _send_group(claim: Claim, rows: list[dict[str, Any]], batch: SmsBatch | None) -> Outcome:
    pks = [r["pk"] for r in rows]
    try:
        request = _transport(rows, batch)
    except ImproperlyConfigured as exc:
        # Settings changed after the rows were saved: retry with backoff (a deploy may fix
        # it); after MAX_ATTEMPTS they fail with the reason, never cycle for ever.
        return _release(claim, pks, ExotelError(f"Configuration error: {exc}"), None)
    account = rows[0]["account"]
    if not ratelimit.acquire(account, "post"):
        return _release(
            claim, pks, ExotelError("local rate limit: no slot within 60 s"), 1.0, count=False
        )
    _mark_request_started(claim, pks)
    try:
        results = request()
    except ExotelError as exc:
        return _failed_request(claim, pks, exc)
    return _record_results(claim, rows, results)


def _failed_request(claim: Claim, pks: list[int], exc: ExotelError) -> Outcome:
    """Sort a failed request: certainly not accepted (retry), maybe accepted, or refused."""
    if exc.outcome_unknown:
        return _unknown(claim, pks, f"Exotel may have accepted it: {exc}")
    if isinstance(exc, ExotelAPIError):
        if exc.retryable:
            return _release(claim, pks, exc, exc.retry_after)
        return _reject(claim, pks, exc)
    if exc.retryable or isinstance(exc, ExotelConnectionError):
        return _release(claim, pks, exc, None)
    if isinstance(exc, ExotelResponseError) and (exc.http_status or 0) >= 500:
        return _release(claim, pks, exc, None)
    # Validation, auth, balance, DLT, our own invalid request: final at once, with the code.
    return _reject(claim, pks, exc)


def _deliver(claim: Claim, batch: SmsBatch | None) -> Outcome:
    outcome = Outcome(claimed=len(claim.rows))
    dynamic = batch is not None and batch.kind == SmsBatch.KIND_DYNAMIC
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in claim.rows:
        groups.setdefault(_request_key(row, dynamic), []).append(row)
    for rows in groups.values():
        outcome.add(_send_group(claim, rows, batch))
    return outcome


def deliver_message(pk: int) -> Outcome:
    """Send one pending message (no-op if another worker has it or it was sent)."""
    base = SmsMessage.objects.filter(pk=pk, batch__isnull=True)
    claim = _claim(base, 1)
    if claim is None:
        return Outcome(retry_after=_due_in(base))
    return _deliver(claim, None)


def deliver_batch(batch_pk: int, *, time_budget: float | None = None) -> Outcome:
    """Send a batch's pending messages chunk by chunk until none is left (or time is up)."""
    batch = SmsBatch.objects.filter(pk=batch_pk).first()
    if batch is None:
        return Outcome()
    chunk = get_settings().chunk_size
    started = time.monotonic()
    total = Outcome()
    base = SmsMessage.objects.filter(batch_id=batch_pk)
    while True:
        claim = _claim(base, chunk)
        if claim is None:
            break
        result = _deliver(claim, batch)
        total.add(result)
        if result.retry_after is not None:
            break
        if time_budget is not None and time.monotonic() - started > time_budget:
            total.more = True
            break
    if total.retry_after is None and not total.more:
        total.retry_after = _due_in(base)
    return total


def _due_in(qs: QuerySet[SmsMessage]) -> float | None:
    """Seconds until the earliest row waiting out a backoff is due; None if none waits.

    Only waits up to RETRY_BACKOFF_MAX are worth a countdown: a row scheduled or held by
    a window for longer stays in the database until ``release_due`` wakes a sender.
    """
    return scheduling.next_due(qs, timezone.now(), get_settings().retry_backoff_max)


def run_until_done(step: Callable[[], Outcome], max_wait: float = 600.0) -> Outcome:
    """Synchronous sending: repeat a step, sleeping out backoffs, like a task's retries."""
    total = Outcome()
    deadline = time.monotonic() + max_wait
    while True:
        outcome = step()
        total.add(outcome)
        total.retry_after = outcome.retry_after
        if outcome.retry_after is None and not outcome.more:
            return total
        if time.monotonic() >= deadline:
            return total
        if outcome.retry_after:
            time.sleep(min(outcome.retry_after, max(0.0, deadline - time.monotonic())))
