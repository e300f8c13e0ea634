"""``Idempotency-Key`` for the sending endpoints: a retried request never sends twice.

How it holds under concurrency:

1. The record (key, user, endpoint, body hash) is INSERTed first, in its own short
   transaction; the unique constraint lets exactly one request own the key. Another
   request with the key gets the stored answer, 409 while the first is running, or 422
   when its body differs.
2. The owner runs the endpoint inside a transaction and, in that same transaction,
   writes its answer into the record, fenced on the record's id: the messages and the
   answer commit together or not at all, and the Celery tasks are enqueued on commit.
3. If the owner fails (validation error, exception, non-2xx answer) the record is
   deleted so the client may correct the request and retry with the same key.

A record left in progress by a dead process is taken over after ``IN_PROGRESS_TIMEOUT``;
should the original request still be running, its final fenced write then finds its
record gone and rolls everything back, so the key still sends at most once.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, router, transaction
from django.utils import timezone
from rest_framework import status as http
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from ..conf import get_settings
from ..models import IdempotencyRecord
from .schema import IDEMPOTENCY_HEADER, REPLAYED_HEADER

__all__ = [
    "IN_PROGRESS_TIMEOUT",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "idempotent",
    "purge_expired",
    "request_hash",
    "run_idempotent",
]

# Seconds after which a record still "in progress" is presumed abandoned by a dead process.
IN_PROGRESS_TIMEOUT = 600.0
MAX_KEY_LENGTH = 255

H = TypeVar("H", bound=Callable[..., Response])


class IdempotencyInProgress(APIException):
    status_code = http.HTTP_409_CONFLICT
    default_detail = (
        "A request with this Idempotency-Key is in progress; retry after it has finished."
    )
    default_code = "idempotency_in_progress"


class IdempotencyKeyReused(APIException):
    status_code = http.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was already used with a different request body; "
        "use a new key for a new request."
    )
    default_code = "idempotency_key_reused"


class _Superseded(Exception):
    """Our record was taken over while we ran: roll back what we did."""


def _canonical(data: Any) -> Any:
    if hasattr(data, "lists"):  # QueryDict from a form-encoded body
        return {key: values for key, values in data.lists()}
    return data


def request_hash(payload: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``payload``."""
    text = json.dumps(
        _canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _user_key(request: Request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.pk)
    return ""


def _db() -> str:
    return router.db_for_write(IdempotencyRecord)


def _json(data: Any) -> Any:
    """The body as it went out: what a replay must return byte for byte."""
    return json.loads(json.dumps(data, cls=JSONEncoder))


def _replay(record: IdempotencyRecord) -> Response:
    assert record.response_status is not None
    return Response(
        record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"}
    )


def _own(
    key: str, user_key: str, endpoint: str, digest: str
) -> tuple[IdempotencyRecord, Response | None]:
    """Insert our record, or return (existing record, stored answer) for a replay."""
    db = _db()
    ttl = get_settings().idempotency_key_ttl
    lookup = {"key": key, "user_key": user_key, "endpoint": endpoint}
    for _attempt in range(3):
        try:
            with transaction.atomic(using=db):
                record = IdempotencyRecord.objects.using(db).create(**lookup, request_hash=digest)
            return record, None
        except IntegrityError:
            existing = IdempotencyRecord.objects.using(db).filter(**lookup).first()
        if existing is None:  # deleted between our INSERT and SELECT: try again
            continue
        age = (timezone.now() - existing.created_at).total_seconds()
        if age >= ttl:
            IdempotencyRecord.objects.using(db).filter(pk=existing.pk).delete()
            continue
        if existing.request_hash != digest:
            raise IdempotencyKeyReused()
        if existing.response_status is None:
            if age < IN_PROGRESS_TIMEOUT:
                raise IdempotencyInProgress()
            # Abandoned by a dead process; the fenced write makes a late owner roll back.
            IdempotencyRecord.objects.using(db).filter(
                pk=existing.pk, response_status__isnull=True
            ).delete()
            continue
        return existing, _replay(existing)
    raise IdempotencyInProgress()


def run_idempotent(
    request: Request,
    endpoint: str,
    handler: Callable[[], Response],
    scope: Mapping[str, Any] | None = None,
) -> Response:
    """Run ``handler`` at most once per ``Idempotency-Key`` (plain call without the header)."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return handler()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            {IDEMPOTENCY_HEADER: [f"Give a key of 1 to {MAX_KEY_LENGTH} characters."]}
        )
    digest = request_hash({"scope": dict(scope or {}), "data": _canonical(request.data)})
    record, stored = _own(key, _user_key(request), endpoint, digest)
    if stored is not None:
        return stored

    db = _db()
    try:
        with transaction.atomic(using=db):
            response = handler()
            if http.is_success(response.status_code):
                written = (
                    IdempotencyRecord.objects.using(db)
                    .filter(pk=record.pk, response_status__isnull=True)
                    .update(
                        response_status=response.status_code, response_body=_json(response.data)
                    )
                )
                if not written:
                    raise _Superseded()
                return response
    except _Superseded:
        raise IdempotencyInProgress(
            "This request ran so long that a retry with the same Idempotency-Key took it "
            "over; nothing was sent by it."
        ) from None
    except BaseException:
        _release(record)
        raise
    _release(record)
    return response


def _release(record: IdempotencyRecord) -> None:
    """Forget a key whose request failed, so it can be retried (corrected) with the same key."""
    IdempotencyRecord.objects.using(_db()).filter(
        pk=record.pk, response_status__isnull=True
    ).delete()


def idempotent(endpoint: str) -> Callable[[H], H]:
    """Decorate a viewset method; URL kwargs (e.g. a template's pk) are part of the hash."""

    def decorate(method: H) -> H:
        @functools.wraps(method)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            return run_idempotent(
                request, endpoint, lambda: method(view, request, *args, **kwargs), kwargs
            )

        return wrapper  # type: ignore[return-value]

    return decorate


def purge_expired() -> int:
    """Delete records older than ``IDEMPOTENCY_KEY_TTL``; returns how many (for a cron/task)."""
    cutoff = timezone.now() - timedelta(seconds=get_settings().idempotency_key_ttl)
    deleted: int
    deleted, _ = IdempotencyRecord.objects.using(_db()).filter(created_at__lt=cutoff).delete()
    return deleted
