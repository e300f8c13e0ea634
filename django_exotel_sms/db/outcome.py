"""Writing a chunk's outcome: each row's own values in one UPDATE, and its history.

* :func:`set_clause` builds the ``SET`` list: a field with one value for every row is set
  plainly; fields that differ (the Sid, mostly) become ``CASE id WHEN .. THEN .. END``.
  Written as SQL because building 100 ORM ``When`` expressions per field costs more than
  the database round trip.
* :func:`update_rows` is the portable UPDATE (the caller locks the rows first and writes
  the history with ``bulk_create``, in one transaction).
* :func:`record` is the same on PostgreSQL as one statement: a CTE locks the rows still
  ours (reading their status and whether a report is held for them), updates them and
  inserts their history; no BEGIN, no separate lock query, one commit. With ``returning``
  it also reads the updated rows back, for the signals fired after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.utils import timezone

from ..models import SmsMessage, StatusEvent
from . import rows as raw


def supported(db: str) -> bool:
    return connections[db].vendor == "postgresql"


def _prep(name: str, value: Any, db: str) -> Any:
    return raw.db_value(connections[db], SmsMessage, name, value)


def set_clause(db: str, rows: Mapping[int, Mapping[str, Any]]) -> tuple[str, list[Any]]:
    """``col = %s, col = CASE "table"."id" WHEN %s THEN %s ... END, ...`` and its params."""
    conn = connections[db]
    meta = SmsMessage._meta
    quote = conn.ops.quote_name
    table = quote(meta.db_table)
    pk_column = f"{table}.{quote(meta.pk.column)}"
    sets: list[str] = []
    params: list[Any] = []
    names = sorted({name for values in rows.values() for name in values} | {"updated_at"})
    now = timezone.now()
    for name in names:
        column = quote(raw.column(SmsMessage, name))
        values = (
            [now] * len(rows)
            if name == "updated_at"
            else [row[name] for row in rows.values() if name in row]
        )
        if len(values) == len(rows) and all(v == values[0] for v in values):
            sets.append(f"{column} = %s")
            params.append(_prep(name, values[0], db))
            continue
        whens = []
        for pk, row in rows.items():
            if name in row:
                whens.append("WHEN %s THEN %s")
                params.extend([pk, _prep(name, row[name], db)])
        sets.append(f"{column} = CASE {pk_column} {' '.join(whens)} ELSE {table}.{column} END")
    return ", ".join(sets), params


def update_rows(
    db: str,
    rows: Mapping[int, Mapping[str, Any]],
    token: uuid.UUID,
    from_statuses: Sequence[str],
) -> int:
    """One set-based UPDATE writing each row's own values, only where the row is still ours."""
    conn = connections[db]
    meta = SmsMessage._meta
    quote = conn.ops.quote_name
    sets, params = set_clause(db, rows)
    ids = list(rows)
    # Only quoted identifiers and placeholders are interpolated; every value is a parameter.
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {sets} "  # noqa: S608
        f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))}) "
        f"AND {quote('claim_token')} = %s "
        f"AND {quote('status')} IN ({', '.join(['%s'] * len(from_statuses))})"
    )
    params.extend(ids)
    params.append(_prep("claim_token", token, db))
    params.extend(from_statuses)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


@dataclass
class Recorded:
    """What :func:`record` wrote: ``{pk: previous status}``, rows with a held report, and
    (with ``returning``) the updated rows as model instances."""

    owned: dict[int, str] = field(default_factory=dict)
    held: set[int] = field(default_factory=set)
    messages: dict[int, SmsMessage] | None = None


def record(
    db: str,
    rows: Mapping[int, Mapping[str, Any]],
    token: uuid.UUID,
    from_statuses: Sequence[str],
    *,
    lock: Any,
    source: str,
    note: str,
    returning: bool,
) -> Recorded:
    """PostgreSQL: lock the rows still ours, update them, insert their history; one statement.

    ``lock`` is the ``values_list("pk", "status", "has_held")`` queryset selecting the rows
    still ours (the same one the portable path locks with ``select_for_update``).
    """
    conn = connections[db]
    quote = conn.ops.quote_name
    meta = SmsMessage._meta
    table = quote(meta.db_table)
    pk_column = quote(meta.pk.column)
    events = StatusEvent._meta

    lock_sql, lock_params = lock.query.sql_with_params()
    sets, set_params = set_clause(db, rows)

    columns: list[str] = []
    names: list[str] = []
    converters: Any = None
    compiler: Any = None
    if returning:
        compiler = SmsMessage.objects.using(db).all().query.get_compiler(using=db)
        compiler.setup_query()
        for index, (_, (sql, _params), _) in enumerate(compiler.select):
            columns.append(f"{sql} AS c{index}")
        names = [f.attname for f in meta.concrete_fields]
        assert len(names) == len(compiler.select)
        converters = compiler.get_converters([col for col, _, _ in compiler.select])
    returned = ", ".join([f"{table}.{pk_column} AS row_id", *columns])
    extra = ", ".join(f"updated.c{i}" for i in range(len(columns)))

    ids = list(rows)
    history = [
        ids,
        [rows[pk]["status"] for pk in ids],
        [rows[pk].get("detailed_status_code") for pk in ids],
        [(rows[pk].get("detailed_status") or "")[:64] for pk in ids],
    ]
    event_columns = ", ".join(
        quote(raw.column(StatusEvent, name))
        for name in (
            "message",
            "status",
            "detailed_status_code",
            "detailed_status",
            "source",
            "applied",
            "note",
            "payload",
            "created_at",
        )
    )
    # Only quoted identifiers and compiled SQL are interpolated; values are parameters.
    sql = (
        f"WITH locked AS ({lock_sql} FOR UPDATE OF {table}), "  # noqa: S608
        f"updated AS (UPDATE {table} SET {sets} "
        f"WHERE {table}.{pk_column} IN (SELECT pk FROM locked) RETURNING {returned}), "
        f"history AS (INSERT INTO {quote(events.db_table)} ({event_columns}) "
        "SELECT e.id, e.status, e.code, e.detail, %s, %s, %s, NULL, %s "
        "FROM unnest(%s::bigint[], %s::text[], %s::integer[], %s::text[]) "
        "AS e(id, status, code, detail) "
        "WHERE e.id IN (SELECT row_id FROM updated)) "
        f"SELECT locked.pk, locked.status, locked.has_held{', ' + extra if extra else ''} "
        "FROM locked JOIN updated ON updated.row_id = locked.pk"
    )
    params = [
        *lock_params,
        *set_params,
        source,
        True,
        note[:255],
        timezone.now(),
        *history,
    ]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    out = Recorded(messages={} if returning else None)
    for row in fetched:
        pk, previous, has_held = row[0], row[1], row[2]
        out.owned[pk] = previous
        if has_held:
            out.held.add(pk)
    if returning and out.messages is not None:
        values = [list(row[3:]) for row in fetched]
        if converters:
            values = [list(v) for v in compiler.apply_converters(values, converters)]
        for row_values in values:
            message = SmsMessage.from_db(db, names, row_values)
            out.messages[message.pk] = message
    return out
