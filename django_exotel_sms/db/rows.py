"""Raw SQL for the callback's hot path, with Django's own value conversion.

The ORM spends more CPU building and compiling a query than PostgreSQL spends running it
(a callback is two or three small indexed statements). These helpers run fixed SQL and
still hand back what the ORM would: each column goes through the same converters
(``connection.ops.get_db_converters`` and the field's own), so datetimes, JSON, decimals
and UUIDs come out alike on every backend.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

Converter = Any  # (value, expression, connection) -> value
Plan = list[tuple[Any, list[Converter]]]
T = TypeVar("T")

# Connections are per thread, and converters are bound to one's ``ops``: cache per connection.
_CACHE: weakref.WeakKeyDictionary[BaseDatabaseWrapper, dict[str, Any]] = weakref.WeakKeyDictionary()


def cached(connection: BaseDatabaseWrapper, key: str, build: Callable[[], T]) -> T:
    """``build()`` once per connection object and key."""
    mine = _CACHE.setdefault(connection, {})
    if key not in mine:
        mine[key] = build()
    return mine[key]  # type: ignore[no-any-return]


def converters(connection: BaseDatabaseWrapper, fields: Sequence[Field[Any, Any]]) -> Plan:
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
    plan: Plan,
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


def field(model: type[Model], name: str) -> Field[Any, Any]:
    """A concrete field by name (``get_field`` may also answer a reverse relation)."""
    found = model._meta.get_field(name)
    if not isinstance(found, Field):
        raise TypeError(f"{model.__name__}.{name} is not a concrete field")
    return found


def db_value(connection: BaseDatabaseWrapper, model: type[Model], name: str, value: Any) -> Any:
    """``value`` for field ``name`` as the ORM would send it in an INSERT or UPDATE."""
    return field(model, name).get_db_prep_save(value, connection=connection)


def column(model: type[Model], name: str) -> str:
    found = field(model, name).column
    if found is None:
        raise TypeError(f"{model.__name__}.{name} has no column")
    return found
