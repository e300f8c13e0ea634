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

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..models import SmsMessage, StatusEvent
from . import rows


@dataclass(frozen=True)
class Applied:
    previous: str
    number: str
    changed: bool
    message: SmsMessage | None  # as the UPDATE left it (None when not changed)


def supported(using: str) -> bool:
    return connections[using].vendor == "postgresql"


@lru_cache(maxsize=4)
def _statement(vendor_key: str) -> str:
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
    # Identifiers only, from the models' meta and quoted; every value is a parameter.
    return f"""
WITH old AS (
    SELECT {col(msg, "id")} AS id, {col(msg, "status")} AS status, {col(msg, "to")} AS number
    FROM {q(msg.db_table)} WHERE {col(msg, "id")} = %(pk)s FOR UPDATE
), upd AS (
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
SELECT old.status, old.number, upd.* FROM old LEFT JOIN upd ON true
"""  # noqa: S608


def apply(
    using: str,
    message_pk: int,
    *,
    status: str,
    behind: list[str],
    code: int | None,
    detail: str,
    units: int | None,
    price: Any,
    sent: datetime | None,
    source: str,
    payload: dict[str, Any] | None,
    now: datetime,
) -> Applied | None:
    """Run the statement; None when the message does not exist."""
    connection: BaseDatabaseWrapper = connections[using]
    prep = _prep(connection)
    params = {
        "pk": message_pk,
        "status": status,
        "behind": behind,
        "code": code,
        "detail": detail,
        "units": units,
        "price": prep["price"](price),
        "sent": prep["sent_at"](sent),
        "now": prep["updated_at"](now),
        "source": source,
        "payload": prep["payload"](payload),
    }
    with connection.cursor() as cursor:
        cursor.execute(_statement(using), params)
        row = cursor.fetchone()
    if row is None:
        return None
    previous, number, *fields = row
    if fields[0] is None:  # the LEFT JOIN found no updated row
        return Applied(previous, number, False, None)
    plan = rows.cached(
        connection, "message", lambda: rows.converters(connection, rows.concrete(SmsMessage))
    )
    values = rows.convert(connection, fields, plan)
    names = [f.attname for f in rows.concrete(SmsMessage)]
    message = SmsMessage.from_db(using, names, values)
    return Applied(previous, number, True, message)


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
