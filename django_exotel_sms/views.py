"""Exotel's callbacks: a message's fate (status) and clicks on tracked short URLs.

Exotel does not sign these requests; the signed token in the URL (``callbacks.py``)
proves we issued it and names the message or batch the posted Sid must belong to.

Answers: 403 for a bad token, 400 for a malformed form (nothing changes on either),
otherwise 200 "OK" -- also for an unknown Sid, a Sid outside the token's scope (the same
answer, so a token tells nothing about other messages; nothing changes) or a duplicate,
so Exotel does not retry forever. A constant, small number of queries.

A message whose send answer was lost has no Sid; a report naming its number adopts the
Sid only when exactly one Sid-less message in the token's scope has that number. With
more than one, the report is held as unapplied history on each candidate and applied
once one of them learns that Sid (``held.py``). Adoption never guesses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.core import signing
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    UnreadablePostError,
)
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import callbacks, logfields, phone, status
from .client import parse_exotel_datetime
from .conf import get_settings
from .db import rows
from .models import ClickEvent, SmsBatch, SmsMessage, StatusEvent
from .retry_later import retry_later_when_db_busy
from .tracking import HELD_NOTE, OUT_OF_SCOPE, StatusReport, apply_by_sid, apply_report

logger = logging.getLogger(__name__)

MAX_FIELDS = 64
MAX_KEY_LENGTH = 100
MAX_VALUE_LENGTH = 4096
MAX_SID_LENGTH = 64
MAX_INT = 2**31 - 1
# A message whose send answer was lost has no Sid yet; a callback may tell us it.
ADOPTABLE = (status.UNCERTAIN, status.SUBMITTING)
# Messages a held report is recorded on, at most (a batch may repeat one number).
MAX_CANDIDATES = 100


class Malformed(ValueError):
    """The form cannot be read; the text is the short reason sent back with the 400."""


class OutOfScope(Exception):
    """The Sid is known but belongs to another message or batch than the token's."""


class Ambiguous(Exception):
    """More than one Sid-less message in scope has the reported number."""

    def __init__(self, candidates: list[int]) -> None:
        super().__init__(f"{len(candidates)} candidates")
        self.candidates = candidates


def _ok() -> HttpResponse:
    return HttpResponse("OK", content_type="text/plain")


def _forbidden(reason: str) -> HttpResponse:
    return HttpResponseForbidden(reason, content_type="text/plain")


def _bad_request(reason: str) -> HttpResponse:
    return HttpResponseBadRequest(reason, content_type="text/plain")


class CallbackForm:
    """The posted fields (last value wins), looked up by exact then case-insensitive name."""

    def __init__(self, post: Mapping[str, str]) -> None:
        if len(post) > MAX_FIELDS:
            raise Malformed("too many fields")
        data: dict[str, str] = {}
        for key, value in post.items():
            if len(key) > MAX_KEY_LENGTH:
                raise Malformed("field name too long")
            if len(value) > MAX_VALUE_LENGTH:
                raise Malformed(f"{key[:40]} too long")
            if "\x00" in key or "\x00" in value:
                # No database stores NUL in text; Exotel never sends one.
                raise Malformed("NUL character in form")
            data[key] = value
        self.data = data
        self._lower = {k.lower(): v for k, v in data.items()}

    @classmethod
    def from_request(cls, request: HttpRequest) -> CallbackForm:
        try:
            post = request.POST
        except (SuspiciousOperation, MultiPartParserError, UnreadablePostError) as exc:
            raise Malformed("unreadable form") from exc
        return cls({key: post.getlist(key)[-1] for key in post})

    @classmethod
    def from_payload(cls, payload: Mapping[str, object]) -> CallbackForm:
        """The form again, from the payload a held report kept."""
        return cls({str(k): str(v) for k, v in payload.items()})

    def get(self, name: str) -> str:
        if name in self.data:
            return self.data[name]
        return self._lower.get(name.lower(), "")

    def text(self, name: str, max_length: int) -> str:
        value = self.get(name)
        if len(value) > max_length:
            raise Malformed(f"{name} too long")
        return value

    def sid(self, name: str, *, required: bool) -> str:
        value = self.get(name)
        if not value:
            if required:
                raise Malformed(f"{name} is required")
            return ""
        if len(value) > MAX_SID_LENGTH:
            raise Malformed(f"{name} too long")
        if not value.isprintable() or any(c.isspace() for c in value):
            raise Malformed(f"{name} is not a valid Sid")
        return value

    def integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        text = self.get(name).strip()
        if not text:
            return None
        value = status.parse_code(text) if len(text) <= 20 else None
        if value is None or not minimum <= value <= maximum:
            raise Malformed(f"{name} is not a valid number")
        return value


# -- status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusForm:
    sid: str
    status: str
    to: str
    sms_units: int | None
    detailed_status: str
    detailed_status_code: int | None
    date_sent: datetime | None
    price: Decimal | None


def _date(text: str) -> datetime | None:
    """DateSent as an aware datetime, or None (then it is kept in the payload only)."""
    if not text.strip() or len(text) > 64:
        return None
    try:
        parsed = parse_exotel_datetime(text)
        # Stored as UTC: 9999-12-31T23:59-14:00 parses but has no UTC equivalent.
        return None if parsed is None else parsed.astimezone(dt_timezone.utc)
    except (ValueError, TypeError, OverflowError):
        return None


def _price(text: str) -> Decimal | None:
    """Price, when the form has one; junk or out-of-range values stay in the payload only."""
    try:
        value = Decimal(text.strip())
        # The column holds 12 digits, 6 after the point; adjusted() avoids Overflow traps.
        if not value.is_finite() or (value and value.adjusted() >= 6):
            return None
        value = value.quantize(Decimal("0.000001"))
        return value if not value or value.adjusted() < 6 else None
    except (ArithmeticError, ValueError):  # decimal.InvalidOperation, Overflow...
        return None


def parse_status_form(form: CallbackForm) -> StatusForm:
    sid = form.sid("SmsSid", required=True)
    word = status.normalize_exotel_status(form.get("Status"))
    if not word:
        raise Malformed("Status is required")
    if len(word) > 32 or not word.isprintable():
        raise Malformed("Status is not valid")
    return StatusForm(
        sid=sid,
        status=word,
        to=form.text("To", 32).strip(),
        sms_units=form.integer("SmsUnits", minimum=0, maximum=32767),
        detailed_status=form.text("DetailedStatus", 64).strip(),
        detailed_status_code=form.integer(
            "DetailedStatusCode", minimum=-MAX_INT - 1, maximum=MAX_INT
        ),
        date_sent=_date(form.get("DateSent")),
        price=_price(form.get("Price")) if form.get("Price").strip() else None,
    )


def _in_scope(
    scope: callbacks.CallbackScope,
    pk: int,
    batch_id: int | None,
    created_at: datetime,
    batch_created_at: datetime | None,
) -> bool:
    """Whether a message is the token's, or in the token's batch -- the very row, not a
    newer one that reuses its pk after a flush, TRUNCATE or restore."""
    if scope.kind == callbacks.MESSAGE:
        return pk == scope.pk and scope.names(created_at)
    return batch_id == scope.pk and batch_created_at is not None and scope.names(batch_created_at)


def _sid_lookup(connection: BaseDatabaseWrapper) -> tuple[str, rows.Plan]:
    """The Sid lookup as fixed SQL (the ORM would build and compile it per callback)."""
    q = connection.ops.quote_name
    fields = [rows.field(SmsMessage, name) for name in ("id", "batch", "created_at")]
    batch_created = rows.field(SmsBatch, "created_at")
    pk, batch_id, created, sid = (
        q(rows.column(SmsMessage, name)) for name in ("id", "batch", "created_at", "sid")
    )
    messages, batches = q(SmsMessage._meta.db_table), q(SmsBatch._meta.db_table)
    b_pk, b_created = q(rows.column(SmsBatch, "id")), q(rows.column(SmsBatch, "created_at"))
    # Identifiers only, quoted; the Sid is a parameter.
    sql = (
        f"SELECT m.{pk}, m.{batch_id}, m.{created}, b.{b_created} "  # noqa: S608
        f"FROM {messages} m LEFT JOIN {batches} b ON b.{b_pk} = m.{batch_id} "
        f"WHERE m.{sid} = %s"
    )
    return sql, rows.converters(connection, [*fields, batch_created])


def _by_sid(scope: callbacks.CallbackScope, sid: str) -> int | None:
    connection = connections[router.db_for_read(SmsMessage)]
    sql, plan = rows.cached(connection, "sid lookup", lambda: _sid_lookup(connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, [sid])
        found = cursor.fetchone()  # at most one: the Sid is unique
    if found is None:
        return None
    pk, batch_id, created_at, batch_created_at = rows.convert(connection, found, plan)
    if not _in_scope(scope, int(pk), batch_id, created_at, batch_created_at):
        raise OutOfScope
    return int(pk)


def _adoption_candidates(scope: callbacks.CallbackScope, to: str) -> list[int]:
    """The messages in scope, still without a Sid, that this report may be about.

    The posted number must match: a token alone never lets its holder attach a Sid.
    """
    key = phone.match_key(to, get_settings().default_region) if to else None
    if key is None:
        return []
    qs = SmsMessage.objects.filter(sid__isnull=True, status__in=ADOPTABLE, to=key)
    if scope.kind == callbacks.MESSAGE:
        qs = qs.filter(pk=scope.pk, batch__isnull=True)
        rows = qs.values_list("pk", "created_at")
    else:
        rows = qs.filter(batch_id=scope.pk).values_list("pk", "batch__created_at")
    return [
        int(pk)
        for pk, created_at in rows.order_by("pk")[:MAX_CANDIDATES]
        if created_at is not None and scope.names(created_at)
    ]


def adopt(pk: int, sid: str) -> bool:
    """Give a message its Sid: compare-and-set, so two reports never both adopt it."""
    db = router.db_for_write(SmsMessage)
    now = timezone.now()
    try:
        with transaction.atomic(using=db):
            return bool(
                SmsMessage.objects.using(db)
                .filter(pk=pk, sid__isnull=True, status__in=ADOPTABLE)
                .update(sid=sid, submitted_at=now, updated_at=now)
            )
    except IntegrityError:  # the Sid was given to another row meanwhile
        return False


def locate(scope: callbacks.CallbackScope, sid: str, to: str) -> int | None:
    """The pk of the message ``sid`` reports on, within the token's scope; None if unknown.

    Raises ``OutOfScope`` when the Sid is another message's or another batch's, and
    ``Ambiguous`` when several Sid-less messages in scope have the reported number.
    """
    pk = _by_sid(scope, sid)
    if pk is not None:
        return pk
    candidates = _adoption_candidates(scope, to)
    if not candidates:
        return None
    if len(candidates) > 1:
        raise Ambiguous(candidates)
    if adopt(candidates[0], sid):
        logger.info(
            "SMS %s: adopted Sid %s from a status callback",
            candidates[0],
            sid,
            extra=logfields.fields(pk=candidates[0], sid=sid),
        )
        return candidates[0]
    # Lost a race with another report: whoever won, the Sid's owner is now stored.
    return _by_sid(scope, sid)


def _hold(candidates: list[int], report: StatusForm, payload: dict[str, str]) -> None:
    """Keep a report that cannot name its message as unapplied history on each candidate."""
    note = (
        f"{HELD_NOTE}: {len(candidates)} messages in scope to this number have no Sid yet; "
        "applied when one of them gets the posted Sid"
    )
    StatusEvent.objects.bulk_create(
        [
            StatusEvent(
                message_id=pk,
                status=report.status,
                detailed_status_code=report.detailed_status_code,
                detailed_status=report.detailed_status,
                source=StatusEvent.SOURCE_CALLBACK,
                applied=False,
                payload=payload,
                note=note,
            )
            for pk in candidates
        ]
    )
    logger.warning(
        "Status callback for Sid %s held: %d messages without a Sid have its number (%s)",
        report.sid,
        len(candidates),
        ", ".join(map(str, candidates[:10])),
    )


def _status_report(report: StatusForm, payload: dict[str, str]) -> StatusReport:
    return StatusReport(
        status=report.status,
        detailed_status_code=report.detailed_status_code,
        detailed_status=report.detailed_status,
        sms_units=report.sms_units,
        price=report.price,
        date_sent=report.date_sent,
        payload=payload,
    )


def held_report(payload: object) -> tuple[str, StatusReport] | None:
    """The Sid and report a held callback carried; None if it cannot be applied."""
    if not isinstance(payload, dict):
        return None
    try:
        form = CallbackForm.from_payload(payload)
        report = parse_status_form(form)
    except Malformed:
        return None
    if report.status not in status.EXOTEL_STATUSES:
        return None
    return report.sid, _status_report(report, _payload(form))


def _payload(form: CallbackForm) -> dict[str, str]:
    return dict(form.data)


def _out_of_scope(sid: str) -> HttpResponse:
    # The same answer as an unknown Sid: a token must not tell which other Sids exist.
    logger.warning("Status callback ignored: Sid %s is outside the token's scope", sid)
    return _ok()


@csrf_exempt
@require_POST
@retry_later_when_db_busy
def status_callback(request: HttpRequest, token: str) -> HttpResponse:
    """Exotel's StatusCallback: record the report, move the status forward only."""
    try:
        scope = callbacks.read_token(token)
    except signing.BadSignature:  # SignatureExpired included
        logger.warning("Status callback refused: invalid or expired token")
        return _forbidden("Invalid or expired callback token.")
    try:
        form = CallbackForm.from_request(request)
        report = parse_status_form(form)
    except Malformed as exc:
        logger.info("Status callback refused: %s", exc)
        return _bad_request(str(exc))
    payload = _payload(form)
    if report.status in status.EXOTEL_STATUSES:
        # PostgreSQL: find, check the scope and record in one statement.
        done = apply_by_sid(
            scope, report.sid, _status_report(report, payload), StatusEvent.SOURCE_CALLBACK
        )
        if done == OUT_OF_SCOPE:
            return _out_of_scope(report.sid)
        if done is not None:
            return _ok()
    try:
        pk = locate(scope, report.sid, report.to)
    except OutOfScope:
        return _out_of_scope(report.sid)
    except Ambiguous as exc:
        _hold(exc.candidates, report, payload)
        return _ok()
    if pk is None:
        logger.info(
            "Status callback for unknown Sid %s ignored",
            report.sid,
            extra=logfields.fields(sid=report.sid),
        )
        return _ok()
    if report.status not in status.EXOTEL_STATUSES:
        # Never stored as the message's status: kept in the history for a human to see.
        StatusEvent.objects.create(
            message_id=pk,
            status=report.status,
            detailed_status_code=report.detailed_status_code,
            detailed_status=report.detailed_status,
            source=StatusEvent.SOURCE_CALLBACK,
            applied=False,
            payload=payload,
            note="not applied: unknown status",
        )
        logger.warning(
            "SMS %s: unknown status %r in a callback, not applied",
            pk,
            report.status,
            extra=logfields.fields(pk=pk, sid=report.sid),
        )
        return _ok()
    apply_report(pk, _status_report(report, payload), StatusEvent.SOURCE_CALLBACK)
    return _ok()


# -- clicks ---------------------------------------------------------------------------


def _click_message(scope: callbacks.CallbackScope, sms_sid: str) -> int | None:
    if sms_sid:
        pk = _by_sid(scope, sms_sid)
        if pk is not None:
            return pk
    if scope.kind == callbacks.MESSAGE:
        # The token names the message itself (its Sid may be unknown: answer lost).
        created_at = (
            SmsMessage.objects.filter(pk=scope.pk).values_list("created_at", flat=True).first()
        )
        return scope.pk if created_at is not None and scope.names(created_at) else None
    return None


def _click_fields(form: CallbackForm) -> dict[str, object]:
    return {
        "sms_sid": form.sid("Sms_sid", required=False),
        "short_url": form.text("short_url", 500).strip(),
        "long_url": form.get("long_url").strip(),
        "total_clicks": form.integer("Total_clicks", minimum=0, maximum=MAX_INT),
        "ip": form.text("IP", 64).strip(),
        "city": form.text("city", 100).strip(),
        "country": form.text("Country", 100).strip(),
        "os_name": form.text("OS_name", 100).strip(),
        "device_name": form.text("Device_name", 200).strip(),
    }


@csrf_exempt
@require_POST
@retry_later_when_db_busy
def click_callback(request: HttpRequest, token: str) -> HttpResponse:
    """Exotel's click-tracking callback: one ``ClickEvent`` per click, whole form kept."""
    try:
        scope = callbacks.read_token(token, salt=callbacks.CLICK_SALT)
    except signing.BadSignature:
        logger.warning("Click callback refused: invalid or expired token")
        return _forbidden("Invalid or expired callback token.")
    try:
        form = CallbackForm.from_request(request)
        fields = _click_fields(form)
    except Malformed as exc:
        logger.info("Click callback refused: %s", exc)
        return _bad_request(str(exc))
    sms_sid = str(fields["sms_sid"])
    try:
        message_id = _click_message(scope, sms_sid)
    except OutOfScope:
        # Answered like an unknown Sid, but not recorded: it is not this token's click.
        logger.warning("Click callback ignored: Sid %s is outside the token's scope", sms_sid)
        return _ok()
    ClickEvent.objects.create(message_id=message_id, payload=_payload(form), **fields)
    return _ok()
