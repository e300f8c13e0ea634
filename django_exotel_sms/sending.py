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
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from . import (
    callbacks,
    dbretry,
    encoding,
    gate,
    held,
    logfields,
    pipeline,
    ratelimit,
    scheduling,
    signals,
    status,
)
from .backends import get_backend
from .client import BulkResult, SmsResult
from .conf import get_settings
from .db import claim as claim_sql
from .db import outcome as outcome_sql
from .exceptions import (
    ExotelAPIError,
    ExotelConnectionError,
    ExotelError,
    ExotelResponseError,
)
from .models import SmsBatch, SmsMessage, StatusEvent
from .reports import metrics

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
    "created_at",  # callback tokens bind the row's pk and creation time
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
    # Rows a status callback could not tell apart had a report held for them (held.py),
    # seen by the outcome write's own lock query.
    held: set[int] = field(default_factory=set)


def _db() -> str:
    return router.db_for_write(SmsMessage)


def _claim(base: QuerySet[SmsMessage], limit: int) -> Claim | None:
    db = _db()
    token = uuid.uuid4()
    now = timezone.now()
    if claim_sql.supported(db):
        # One statement: lock, move to submitting and read the rows (with what the gate
        # screens), autocommitted.
        rows = claim_sql.claim_returning(
            gate.due(base.using(db), now),
            gate.claimed_fields(SmsMessage.objects.using(db), ROW_FIELDS, now),
            db=db,
            limit=limit,
            token=token,
            now=now,
        )
        if not rows:
            gate.expire(base.using(db), now)
            return None
    else:
        portable = _claim_portable(base, db, limit, token, now)
        if portable is None:
            return None
        rows = portable
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


def _claim_portable(
    base: QuerySet[SmsMessage], db: str, limit: int, token: uuid.UUID, now: datetime
) -> list[dict[str, Any]] | None:
    """Claim in a short transaction (select, then a conditional UPDATE), then read the rows."""
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
    return gate.claimed_rows(
        SmsMessage.objects.using(db)
        .filter(claim_token=token, status=status.SUBMITTING)
        .order_by("pk"),
        ROW_FIELDS,
        now,
    )


def _chunk_fields(claim: Claim, pks: Sequence[int]) -> dict[str, Any]:
    """Structured log fields (``logfields``) for some of a claim's messages."""
    first = claim.rows[0] if claim.rows else {}
    return logfields.fields(
        None, pks=list(pks), batch=first.get("batch_id"), account=first.get("account")
    )


def _mark_request_started(claim: Claim, pks: list[int]) -> list[int]:
    """Mark the rows still ours as about to be sent; return those (only they may be sent).

    A stale claim without this mark never reached Exotel and may be sent again safely. A
    worker that stalled past ``CLAIM_TIMEOUT`` finds some rows handed over: it must not
    send them, their new owner will.
    """
    db = _db()
    mine = SmsMessage.objects.using(db).filter(
        pk__in=pks, claim_token=claim.token, status=status.SUBMITTING
    )

    def mark() -> list[int]:
        # ``claimed_at`` restarts too: a chunk claimed ahead (pipeline.py) waited for the
        # previous request; CLAIM_TIMEOUT bounds each step from here, as for any claim.
        now = timezone.now()
        marked = mine.update(request_started_at=now, claimed_at=now)
        if marked == len(pks):
            return list(pks)
        # The token is this claim's alone: what still carries it was marked just now (a row
        # taken over in between is not sent; marked, it is treated as maybe sent).
        return list(mine.order_by("pk").values_list("pk", flat=True))

    # No transaction: the common case is one UPDATE, atomic by itself.
    owned = dbretry.retry_write(mark, using=db, what="Marking a request as started", atomic=False)
    if len(owned) < len(pks):
        logger.warning(
            "%d claimed message(s) were taken over before their request started; not sending "
            "them. Raise EXOTEL_SMS['CLAIM_TIMEOUT'] above the longest claim.",
            len(pks) - len(owned),
            extra=_chunk_fields(claim, sorted(set(pks) - set(owned))),
        )
    return owned


# -- building requests ------------------------------------------------------------------


def _options(
    row: dict[str, Any], *, callback: str | None, per_message: bool, batch: SmsBatch | None
) -> dict[str, Any]:
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
            url = (
                callbacks.click_callback_url(callbacks.BATCH, batch.pk, batch.created_at)
                if batch is not None
                else callbacks.click_callback_url(callbacks.MESSAGE, row["pk"], row["created_at"])
            )
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
        callback = callbacks.status_callback_url(
            callbacks.MESSAGE, first["pk"], first["created_at"]
        )
    else:
        callback = callbacks.status_callback_url(callbacks.BATCH, batch.pk, batch.created_at)

    if batch is None:
        options = _options(first, callback=callback, per_message=False, batch=batch)
        return lambda: [backend.send(first["to"], first["body"], first["sender"], **options)]
    if batch.kind == SmsBatch.KIND_STATIC:
        options = _options(first, callback=callback, per_message=False, batch=batch)
        numbers = [r["to"] for r in rows]

        def static() -> list[SmsResult]:
            result: BulkResult = backend.send_bulk(
                numbers, first["body"], first["sender"], **options
            )
            return list(result.results)

        return static
    options = _options(first, callback=callback, per_message=True, batch=batch)
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
    from_statuses = list(from_statuses)

    def write() -> list[int]:
        return _apply_once(
            db, claim, per_row, source=source, note=note, from_statuses=from_statuses
        )

    # One statement (PostgreSQL) needs no transaction of its own; inside an outer one it
    # takes a savepoint, so a Sid conflict (write_sids) or a retry starts clean.
    atomic = not outcome_sql.supported(db) or connections[db].in_atomic_block
    return dbretry.retry_write(write, using=db, what="Recording a send's outcome", atomic=atomic)


def _write_outcome(
    db: str,
    claim: Claim,
    per_row: dict[int, dict[str, Any]],
    *,
    source: str,
    note: str,
    from_statuses: list[str],
) -> outcome_sql.Recorded:
    """Lock the rows still ours, write their outcome and history; what was written."""
    lock = (
        SmsMessage.objects.using(db)
        .filter(pk__in=list(per_row), claim_token=claim.token, status__in=from_statuses)
        .annotate(has_held=held.held_exists())
        .values_list("pk", "status", "has_held")
    )
    if outcome_sql.supported(db):
        return outcome_sql.record(
            db,
            per_row,
            claim.token,
            from_statuses,
            lock=lock,
            source=source,
            note=note,
            returning=signals.has_listeners(),
        )
    # Runs inside retry_write's transaction.
    recorded = outcome_sql.Recorded()
    for pk, previous, has_held in lock.select_for_update():
        recorded.owned[pk] = previous
        if has_held:
            recorded.held.add(pk)
    if not recorded.owned:
        return recorded
    rows = {pk: per_row[pk] for pk in recorded.owned}
    outcome_sql.update_rows(db, rows, claim.token, from_statuses)
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
    return recorded


def _apply_once(
    db: str,
    claim: Claim,
    per_row: dict[int, dict[str, Any]],
    *,
    source: str,
    note: str,
    from_statuses: list[str],
) -> list[int]:
    recorded = _write_outcome(
        db, claim, per_row, source=source, note=note, from_statuses=from_statuses
    )
    owned = recorded.owned
    claim.held |= recorded.held
    if len(owned) < len(per_row):
        logger.warning(
            "%d claimed message(s) were taken over before their outcome was recorded; "
            "raise EXOTEL_SMS['CLAIM_TIMEOUT'] above the longest request time.",
            len(per_row) - len(owned),
            extra=_chunk_fields(claim, sorted(set(per_row) - set(owned))),
        )
    if not owned:
        return []
    signals.notify_after_commit(
        ((pk, owned[pk], per_row[pk]["status"], source) for pk in owned),
        using=db,
        messages=recorded.messages,
    )
    return list(owned)


# Exotel's answer settles a row still carrying the claim's token: ``submitting``, or
# ``uncertain`` when reconcile flagged a stalled claim (it keeps the token for this).
_ANSWERABLE = (status.SUBMITTING, status.UNCERTAIN)


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
    written = held.write_sids(
        lambda: _apply(claim, per_row, source=StatusEvent.SOURCE_API, from_statuses=_ANSWERABLE),
        per_row,
    )
    # Callbacks that came before this answer and could not name their row apply now.
    held.apply_held_reports(
        {pk: per_row[pk]["sid"] for pk in written if per_row[pk]["sid"] and pk in claim.held}
    )
    for values in per_row.values():
        if values["status"] == status.REJECTED:
            outcome.rejected += 1
        else:
            outcome.accepted += 1
    if missing:
        outcome.add(_unknown(claim, missing, "Exotel's answer had fewer entries than recipients"))
    return outcome


def backoff_delay(attempts: int, retry_after: float | None) -> float:
    """Seconds to wait before attempt ``attempts + 1``: exponential, jittered, capped."""
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
    delay = backoff_delay(max(attempts.values(), default=1), retry_after)
    outcome = Outcome(requests=1)
    if retry:
        released = SmsMessage.objects.using(_db()).filter(
            pk__in=retry, claim_token=claim.token, status=status.SUBMITTING
        )
        outcome.released = dbretry.retry_write(
            lambda: released.update(
                status=status.PENDING,
                claim_token=None,
                request_started_at=None,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
                error_code=code,
                error_message=str(exc)[:1000],
                attempts=F("attempts") if count else F("attempts") - 1,
                updated_at=timezone.now(),
            ),
            using=_db(),
            what="Releasing messages for a retry",
        )
        outcome.retry_after = delay
        metrics.retried(outcome.released)
        # One line per retry: workers' logs, and exotel_send --sync's progress, show why
        # nothing happens for a while.
        logger.info(
            "%d SMS not sent yet (attempt %d of %d): %s; retrying in %.1f s",
            outcome.released,
            max(attempts.values(), default=1),
            s.max_attempts,
            exc,
            delay,
            extra=_chunk_fields(claim, retry),
        )
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
        claim,
        {pk: dict(fields) for pk in pks},
        source=StatusEvent.SOURCE_API,
        note=str(exc)[:255],
        from_statuses=_ANSWERABLE,
    )
    return Outcome(requests=1, rejected=len(pks))


def _unknown(claim: Claim, pks: list[int], reason: str) -> Outcome:
    """Exotel may or may not have taken these. Default: never resend (at-most-once).

    At-least-once resends them after a backoff while attempts remain. Each attempt is one
    claim and at most one request, so a message reaches Exotel at most ``MAX_ATTEMPTS``
    times: one copy more per lost answer. Out of attempts it becomes ``uncertain``.
    """
    s = get_settings()
    attempts = {r["pk"]: r["attempts"] for r in claim.rows}
    resend = [pk for pk in pks if s.at_least_once and attempts[pk] < s.max_attempts]
    outcome = Outcome(requests=1)
    if resend:
        delay = backoff_delay(max(attempts[pk] for pk in resend), None)
        released = SmsMessage.objects.using(_db()).filter(
            pk__in=resend, claim_token=claim.token, status=status.SUBMITTING
        )
        outcome.released = dbretry.retry_write(
            lambda: released.update(
                status=status.PENDING,
                claim_token=None,
                request_started_at=None,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
                error_message=f"Resending (at-least-once): {reason}"[:1000],
                updated_at=timezone.now(),
            ),
            using=_db(),
            what="Releasing messages to resend",
        )
        outcome.retry_after = delay
    flagged = [pk for pk in pks if pk not in set(resend)]
    if flagged:
        text = reason
        if s.at_least_once:
            text = f"Not resent: {s.max_attempts} attempts made (at-least-once). {reason}"
        fields = {"status": status.UNCERTAIN, "error_message": text[:1000]}
        _apply(
            claim,
            {pk: dict(fields) for pk in flagged},
            source=StatusEvent.SOURCE_LOCAL,
            note=text,
        )
        outcome.uncertain = len(flagged)
    return outcome


def _send_group(
    claim: Claim,
    rows: list[dict[str, Any]],
    batch: SmsBatch | None,
    side: pipeline.Side | None = None,
) -> Outcome:
    pks = [r["pk"] for r in rows]
    try:
        request = _transport(rows, batch)
    except ImproperlyConfigured as exc:
        # Settings changed after the rows were saved: retry with backoff (a deploy may fix
        # it); after MAX_ATTEMPTS they fail with the reason, never cycle for ever.
        return _release(claim, pks, ExotelError(f"Configuration error: {exc}"), None)
    account = rows[0]["account"]
    if not ratelimit.acquire(account, "post"):
        wait = get_settings().rate_limit_max_wait
        return _release(
            claim,
            pks,
            ExotelError(f"local rate limit: no slot within {wait:g} s"),
            1.0,
            count=False,
        )
    owned = set(_mark_request_started(claim, pks))
    if not owned:
        return Outcome()
    if len(owned) < len(rows):
        # Only the rows still ours are sent; the request is rebuilt for them alone.
        rows = [r for r in rows if r["pk"] in owned]
        pks = [r["pk"] for r in rows]
        request = _transport(rows, batch)
    try:
        # The next chunk's claim (``side``) runs while this request is in flight.
        results = pipeline.overlap(request, side, using=_db())
    except ExotelError as exc:
        return _settle(
            claim, pks, f"Exotel's answer: {exc}", partial(_failed_request, claim, pks, exc)
        )
    sids = ", ".join(r.sid for r in results if r.sid)
    return _settle(
        claim,
        pks,
        f"Exotel answered; Sids: {sids or 'none'}",
        lambda: _record_results(claim, rows, results),
    )


def _settle(claim: Claim, pks: list[int], answer: str, record: Callable[[], Outcome]) -> Outcome:
    """Record Exotel's answer; when the database keeps failing, leave the true cause behind.

    Each write already retries transient errors. If they persist, the rows become
    ``uncertain`` with ``Outcome write failed: ...`` (never resent: Exotel may have them),
    rather than wait for reconciliation to guess at a lost worker.
    """
    try:
        return record()
    except dbretry.TRANSIENT_ERRORS as exc:
        logger.error(
            "Outcome write failed for %d message(s) after Exotel's answer (%s): %s",
            len(pks),
            answer,
            exc,
            extra=_chunk_fields(claim, pks),
        )
        text = f"Outcome write failed: {exc}. {answer}"[:1000]
        try:
            flagged = _flag_write_failed(claim, pks, text)
        except dbretry.TRANSIENT_ERRORS:
            logger.exception("Could not record the outcome write failure either")
            raise exc from None
        return Outcome(requests=1, uncertain=flagged)


def _flag_write_failed(claim: Claim, pks: list[int], text: str) -> int:
    """Rows still ours become ``uncertain`` with the cause: plain statements, no CASE."""
    db = _db()

    def write() -> int:
        owned = list(
            SmsMessage.objects.using(db)
            .select_for_update()
            .filter(pk__in=pks, claim_token=claim.token, status=status.SUBMITTING)
            .values_list("pk", flat=True)
        )
        SmsMessage.objects.using(db).filter(pk__in=owned).update(
            status=status.UNCERTAIN, error_message=text, updated_at=timezone.now()
        )
        StatusEvent.objects.using(db).bulk_create(
            StatusEvent(
                message_id=pk,
                status=status.UNCERTAIN,
                source=StatusEvent.SOURCE_LOCAL,
                note="outcome write failed",
            )
            for pk in owned
        )
        signals.notify_after_commit(
            ((pk, status.SUBMITTING, status.UNCERTAIN, StatusEvent.SOURCE_LOCAL) for pk in owned),
            using=db,
        )
        return len(owned)

    return dbretry.retry_write(write, using=db, what="Recording an outcome write failure")


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


def _deliver(claim: Claim, batch: SmsBatch | None, side: pipeline.Side | None = None) -> Outcome:
    outcome = Outcome(claimed=len(claim.rows))
    dynamic = batch is not None and batch.kind == SmsBatch.KIND_DYNAMIC
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in claim.rows:
        groups.setdefault(_request_key(row, dynamic), []).append(row)
    for rows in groups.values():
        outcome.add(_send_group(claim, rows, batch, side))
    if side is not None:
        side.run()  # no request was made to overlap it with
    return outcome


def _unclaim(claim: Claim) -> None:
    """Give back a claim made ahead and not sent (its request never started): pending
    again, the attempt not counted."""
    SmsMessage.objects.using(_db()).filter(
        pk__in=[r["pk"] for r in claim.rows],
        claim_token=claim.token,
        status=status.SUBMITTING,
        request_started_at__isnull=True,
    ).update(
        status=status.PENDING,
        claim_token=None,
        attempts=F("attempts") - 1,
        updated_at=timezone.now(),
    )


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
    claim = _claim(base, chunk)
    while claim is not None:
        # Claim the next chunk while this one's request is in flight (one ahead at most).
        side = pipeline.Side(partial(_claim, base, chunk))
        try:
            result = _deliver(claim, batch, side)
        except BaseException:
            # This chunk's rows keep their state for reconcile; the chunk claimed ahead
            # never reached Exotel, so it goes back at once rather than after CLAIM_TIMEOUT.
            if side.result is not None:
                _unclaim(side.result)
            raise
        total.add(result)
        claim = side.result
        if side.error is not None:
            raise side.error
        if result.retry_after is not None:
            if claim is not None:
                _unclaim(claim)
            break
        if time_budget is not None and time.monotonic() - started > time_budget:
            if claim is not None:
                _unclaim(claim)
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
