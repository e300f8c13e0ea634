"""Raw SQL for the callback's hot path, with Django's own value conversion.

The ORM spends more CPU building and compiling a query than PostgreSQL spends running it
(a callback is two or three small indexed statements). These helpers run fixed SQL and
still hand back what the ORM would: each column goes through the same converters
(``connection.ops.get_db_converters`` and the field's own), so datetimes, JSON, decimals
and UUIDs come out alike on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

Converter = Any  # (value, expression, connection) -> value


def converters(
    connection: BaseDatabaseWrapper, fields: Sequence[Field[Any, Any]]
) -> list[tuple[Any, list[Converter]]]:
    """Per field: the column expression and the converters the ORM would apply to it."""
    out = []
    for field in fields:
        col = field.get_col(field.model._meta.db_table)
        out.append(
            (col, [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)])
        )
    return out


def convert(
    connection: BaseDatabaseWrapper,
    row: Sequence[Any],
    plan: list[tuple[Any, list[Converter]]],
) -> list[Any]:
    values = list(row)
    for i, (col, funcs) in enumerate(plan):
        value = values[i]
        for func in funcs:
            value = func(value, col, connection)
        values[i] = value
    return values


def concrete(model: type[Model]) -> list[Field[Any, Any]]:
    return list(model._meta.concrete_fields)
