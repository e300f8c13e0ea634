"""``tracking.apply_report`` in one statement on PostgreSQL.

The portable path (``tracking._apply_portable``) locks the row, updates it when the
report moves it forward, then inserts the history row: three round trips and most of a
callback's CPU in the ORM. Here one statement does the same, in the same order::

    WITH old AS (SELECT ... FOR UPDATE)          -- lock; the status the report meets
       , upd AS (UPDATE ... FROM old WHERE old.status = ANY(<behind>) RETURNING ...)
       , ev  AS (INSERT INTO <events> SELECT ... applied = EXISTS (upd) FROM old)
    SELECT old.status, old.to, upd.* FROM old LEFT JOIN upd ON true

``FOR UPDATE`` makes a concurrent report wait and then see the row as the winner left it
(PostgreSQL re-reads a row updated meanwhile), so of two reports racing to a terminal
status exactly one updates it: the forward-only rule and the single signal hold as on the
portable path. The UPDATE returns the whole row, so the signal's ``message`` needs no
second read. Reports the portable path alone handles (one that tells a Sid-less message
its Sid, or an unknown status word) never come here.
"""

# Identifiers in the SQL come from the models' meta, quoted; every value is a parameter.
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..models import SmsBatch, SmsMessage, StatusEvent
from . import rows


@dataclass(frozen=True)
class Applied:
    previous: str
    number: str
    changed: bool
    message: SmsMessage | None  # as the UPDATE left it (None when not changed)


def supported(using: str) -> bool:
    return connections[using].vendor == "postgresql"


@lru_cache(maxsize=8)
def _statement(vendor_key: str, by_sid: bool) -> str:
    connection = connections[vendor_key]
    q = connection.ops.quote_name
    msg = SmsMessage._meta
    ev = StatusEvent._meta

    def col(model: Any, name: str) -> str:
        return q(rows.column(model.model, name))

    def cast(name: str) -> str:
        return str(rows.field(SmsMessage, name).cast_db_type(connection))

    returning = ", ".join(
        f"m.{q(rows.column(SmsMessage, f.name))}" for f in rows.concrete(SmsMessage)
    )
    # Optional facts: NULL keeps what the row has (the portable path leaves them out).
    keep = {
        "sms_units": "units",
        "price": "price",
        "sent_at": "sent",
    }
    kept = ", ".join(
        f"{col(msg, name)} = COALESCE(%({param})s::{cast(name)}, m.{col(msg, name)})"
        for name, param in keep.items()
    )
    batch = SmsBatch._meta
    if by_sid:
        # The Sid's message, and whether it is the token's (or in the token's batch) -- the
        # very row, by its creation time, as ``CallbackScope.names`` checks it.
        head = f"""
WITH found AS (
    SELECT m.{col(msg, "id")} AS id,
        CASE WHEN %(by_message)s
             THEN m.{col(msg, "id")} = %(scope_pk)s AND m.{col(msg, "created_at")} = %(stamp)s
             ELSE m.{col(msg, "batch")} = %(scope_pk)s AND b.{col(batch, "created_at")} = %(stamp)s
        END AS ok
    FROM {q(msg.db_table)} AS m
    LEFT JOIN {q(batch.db_table)} AS b ON b.{col(batch, "id")} = m.{col(msg, "batch")}
    WHERE m.{col(msg, "sid")} = %(sid)s
), old AS (
    SELECT m.{col(msg, "id")} AS id, m.{col(msg, "status")} AS status,
        m.{col(msg, "to")} AS number
    FROM {q(msg.db_table)} AS m JOIN found ON found.id = m.{col(msg, "id")} AND found.ok
    FOR UPDATE OF m
"""
        tail = "SELECT found.id, found.ok, old.status, old.number, upd.* FROM found"
        tail += " LEFT JOIN old ON true LEFT JOIN upd ON true"
    else:
        head = f"""
WITH old AS (
    SELECT {col(msg, "id")} AS id, {col(msg, "status")} AS status, {col(msg, "to")} AS number
    FROM {q(msg.db_table)} WHERE {col(msg, "id")} = %(pk)s FOR UPDATE
"""
        tail = "SELECT old.status, old.number, upd.* FROM old LEFT JOIN upd ON true"
    # Identifiers only, from the models' meta and quoted; every value is a parameter.
    return (
        head
        + f"""), upd AS (
    UPDATE {q(msg.db_table)} AS m SET
        {col(msg, "status")} = %(status)s,
        {col(msg, "detailed_status_code")} = %(code)s::integer,
        {col(msg, "detailed_status")} = %(detail)s,
        {col(msg, "error_code")} = NULL,
        {col(msg, "error_message")} = '',
        {col(msg, "updated_at")} = %(now)s,
        {kept}
    FROM old
    WHERE m.{col(msg, "id")} = old.id AND old.status = ANY(%(behind)s::text[])
    RETURNING {returning}
), ev AS (
    INSERT INTO {q(ev.db_table)} (
        {col(ev, "message")}, {col(ev, "status")}, {col(ev, "detailed_status_code")},
        {col(ev, "detailed_status")}, {col(ev, "source")}, {col(ev, "applied")},
        {col(ev, "note")}, {col(ev, "payload")}, {col(ev, "created_at")}
    )
    SELECT old.id, %(status)s, %(code)s::integer, %(detail)s, %(source)s,
        EXISTS (SELECT 1 FROM upd),
        CASE WHEN EXISTS (SELECT 1 FROM upd) THEN ''
             ELSE 'not applied: message was already ' || old.status END,
        %(payload)s, %(now)s
    FROM old
)
{tail}
"""
    )


@dataclass(frozen=True)
class Located:
    """What :func:`apply_by_sid` found: no message with the Sid (``pk`` None), one outside
    the token's scope (``applied`` None: nothing written), or the outcome of the report."""

    pk: int | None
    applied: Applied | None


def apply(using: str, message_pk: int, **values: Any) -> Applied | None:
    """Apply a report to a message by pk; None when the message does not exist.

    ``values``: status, behind, code, detail, units, price, sent, source, payload, now.
    """
    row = _run(using, False, {"pk": message_pk}, values)
    return None if row is None else _applied(using, row)


def apply_by_sid(
    using: str, sid: str, *, by_message: bool, scope_pk: int, stamp: datetime, **values: Any
) -> Located:
    """Find the message by Sid, check it is the token's, apply the report: one statement.

    ``by_message``: the token names a message (else a batch); ``scope_pk`` and ``stamp``
    (its ``created_at``) are the row it names.
    """
    extra = {"sid": sid, "by_message": by_message, "scope_pk": scope_pk, "stamp": stamp}
    row = _run(using, True, extra, values)
    if row is None:
        return Located(None, None)
    pk, ok, *rest = row
    if not ok or rest[0] is None:
        return Located(int(pk), None)
    return Located(int(pk), _applied(using, rest))


def _run(
    using: str, by_sid: bool, target: dict[str, Any], values: dict[str, Any]
) -> tuple[Any, ...] | None:
    connection: BaseDatabaseWrapper = connections[using]
    prep = rows.cached(connection, "apply prep", lambda: _prep(connection))
    params = {
        **target,
        "status": values["status"],
        "behind": values["behind"],
        "code": values["code"],
        "detail": values["detail"],
        "units": values["units"],
        "price": prep["price"](values["price"]),
        "sent": prep["sent_at"](values["sent"]),
        "now": prep["updated_at"](values["now"]),
        "source": values["source"],
        "payload": prep["payload"](values["payload"]),
    }
    if "stamp" in params:
        params["stamp"] = prep["updated_at"](params["stamp"])
    with connection.cursor() as cursor:
        cursor.execute(_statement(using, by_sid), params)
        row = cursor.fetchone()
    return None if row is None else tuple(row)


def _applied(using: str, row: Any) -> Applied:
    connection = connections[using]
    previous, number, *fields = row
    if fields[0] is None:  # the LEFT JOIN found no updated row
        return Applied(previous, number, False, None)
    plan = rows.cached(
        connection, "message", lambda: rows.converters(connection, rows.concrete(SmsMessage))
    )
    values = rows.convert(connection, fields, plan)
    names = [f.attname for f in rows.concrete(SmsMessage)]
    return Applied(previous, number, True, SmsMessage.from_db(using, names, values))


def _prep(connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """Values as the ORM would send them (aware datetimes, decimals, JSON adapters)."""
    fields = {
        "price": SmsMessage._meta.get_field("price"),
        "sent_at": SmsMessage._meta.get_field("sent_at"),
        "updated_at": SmsMessage._meta.get_field("updated_at"),
        "payload": StatusEvent._meta.get_field("payload"),
    }
    return {
        name: (lambda value, f=field: f.get_db_prep_save(value, connection))
        for name, field in fields.items()
    }
