"""A paginator that never counts a whole table.

The changelist needs a count to draw page links. Counting millions of rows on every
page view is what makes admins unusable, so we count at most ``cap + 1`` rows (a
``LIMIT``-ed subquery the database stops early) and page through the first ``cap``.
On PostgreSQL the unfiltered table's size is shown from the planner's estimate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

if TYPE_CHECKING:
    _Paginator = Paginator[Any]
else:
    _Paginator = Paginator

DEFAULT_CAP = 10_000


class CappedCountPaginator(_Paginator):
    """``count`` is exact up to ``cap``; beyond it ``capped`` is True and ``count == cap``."""

    cap = DEFAULT_CAP

    def __init__(self, object_list: Any, per_page: int | str, *args: Any, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.capped = False
        self.estimate: int | None = None  # rows in the whole table, when known cheaply

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        found = qs.order_by().values("pk")[: self.cap + 1].count()
        if found <= self.cap:
            return found
        self.capped = True
        if not qs.query.where:
            self.estimate = table_estimate(qs)
        return self.cap

    @property
    def display_count(self) -> str:
        """'42', 'more than 10,000' or 'about 1,234,567'; for the changelist's footer."""
        count = self.count
        if not self.capped:
            return str(count)
        if self.estimate and self.estimate > self.cap:
            return f"about {self.estimate:,}"
        return f"more than {self.cap:,}"


def table_estimate(qs: QuerySet[Any]) -> int | None:
    """The planner's row estimate for the table behind ``qs`` (PostgreSQL only), or None."""
    connection = connections[qs.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [qs.model._meta.db_table],
        )
        row = cursor.fetchone()
    # reltuples is -1 (PostgreSQL 14+) or 0 before the first ANALYZE.
    return int(row[0]) if row and row[0] and row[0] > 0 else None
