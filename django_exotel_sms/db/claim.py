"""The claim as one statement on PostgreSQL: lock, move and read a chunk in one round trip.

``UPDATE ... WHERE pk = ANY(ARRAY(SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)) RETURNING ...``
takes up to ``n`` due rows no other worker holds, moves them to ``submitting`` under the
claim's token and returns what the request needs, with the suppression columns the gate
screens (``gate.claimed_rows``), all in one autocommitted statement: no BEGIN, no
separate read, one commit. Other databases keep the portable claim in ``sending._claim``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import QuerySet

from .. import status
from ..models import SmsMessage
from . import rows as raw


def supported(db: str) -> bool:
    conn = connections[db]
    return conn.vendor == "postgresql" and conn.features.has_select_for_update_skip_locked


def claim_returning(
    due: QuerySet[SmsMessage],
    returning: QuerySet[Any],
    *,
    db: str,
    limit: int,
    token: uuid.UUID,
    now: datetime,
) -> list[dict[str, Any]]:
    """Claim up to ``limit`` rows of ``due`` (ordered by pk); return them as ``returning``
    reads them (a ``.values(...)`` queryset over the message table: its select list
    becomes the RETURNING list, evaluated on the updated rows)."""
    conn = connections[db]
    quote = conn.ops.quote_name
    meta = SmsMessage._meta
    table = quote(meta.db_table)
    pk = quote(meta.pk.column)

    # ARRAY(...) runs the locking subquery once (an InitPlan); as ``IN (...)`` the planner
    # may rescan it (a nested loop), each rescan locking the next rows past LIMIT.
    inner_sql, inner_params = due.order_by("pk").values("pk")[:limit].query.sql_with_params()
    compiler = returning.query.get_compiler(using=db)
    compiler.setup_query()
    query = returning.query
    # The order ValuesIterable reads them in: extra, fields, annotations.
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    assert len(names) == len(compiler.select)
    columns: list[str] = []
    params: list[Any] = []
    for name, (_, (sql, col_params), _) in zip(names, compiler.select, strict=True):
        columns.append(f"{sql} AS {quote(name)}")
        params.extend(col_params)

    def prep(name: str, value: Any) -> Any:
        return raw.db_value(conn, SmsMessage, name, value)

    # Only quoted identifiers and compiled SQL are interpolated; values are parameters.
    sql = (
        f"UPDATE {table} SET {quote('status')} = %s, {quote('claim_token')} = %s, "  # noqa: S608
        f"{quote('claimed_at')} = %s, {quote('request_started_at')} = NULL, "
        f"{quote('attempts')} = {quote('attempts')} + 1, {quote('updated_at')} = %s "
        f"WHERE {pk} = ANY(ARRAY({inner_sql} FOR UPDATE SKIP LOCKED)) AND {quote('status')} = %s "
        f"RETURNING {', '.join(columns)}"
    )
    all_params: Sequence[Any] = [
        status.SUBMITTING,
        prep("claim_token", token),
        prep("claimed_at", now),
        prep("updated_at", now),
        *inner_params,
        status.PENDING,
        *params,
    ]
    converters = compiler.get_converters([col for col, _, _ in compiler.select])
    with conn.cursor() as cursor:
        cursor.execute(sql, all_params)
        fetched = cursor.fetchall()
    if converters:
        fetched = [list(row) for row in compiler.apply_converters(fetched, converters)]
    rows = [dict(zip(names, row, strict=True)) for row in fetched]
    rows.sort(key=lambda r: r["pk"])
    return rows
