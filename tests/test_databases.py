"""Where the databases differ: row claiming with SKIP LOCKED, SQLite without it, MariaDB versions.

The claim (sending._claim) selects pending rows -- ``FOR UPDATE SKIP LOCKED`` where the database
has it -- then moves them to ``submitting`` with an UPDATE that is conditional on the row still
being pending. The lock keeps concurrent claims from waiting on each other; the condition alone
keeps them from ever sharing a row, which is what SQLite (and MariaDB before 10.6) rely on.
PostgreSQL claims in one statement (``db/claim.py``: the same lock, UPDATE and condition).
The two-workers-one-batch test is tests/test_sending.py's, run on PostgreSQL and MariaDB.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import django
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_exotel_sms import managers, sending, status
from django_exotel_sms.models import SmsBatch, SmsMessage

from .helpers import TEST_DB, needs_row_locks, numbers

needs_sqlite = pytest.mark.skipif(TEST_DB != "sqlite", reason="needs TEST_DB=sqlite")
needs_mariadb = pytest.mark.skipif(TEST_DB != "mysql", reason="needs TEST_DB=mysql (MariaDB)")


@pytest.fixture
def pending_batch(monkeypatch):
    """A batch whose rows stay pending: nothing is enqueued or sent when it commits."""
    monkeypatch.setattr(managers, "dispatch_batch", lambda *args, **kwargs: None)

    def make(count: int) -> SmsBatch:
        return SmsMessage.objects.send_bulk(to=numbers(count), body="Your code is 1234")

    return make


def _pks(batch: SmsBatch) -> list[int]:
    return list(SmsMessage.objects.filter(batch=batch).order_by("pk").values_list("pk", flat=True))


def _claim_select(queries: list[dict[str, Any]]) -> str:
    selects = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    # The claim's own SELECT: the only one with a LIMIT (the rows read after the claim carry
    # LIMIT 1 only inside their suppression subqueries).
    selects = [
        sql for sql in selects if "LIMIT" in sql.upper() and "SUPPRESSION" not in sql.upper()
    ]
    assert len(selects) == 1, selects
    return selects[0].upper()


class StaleSnapshot:
    """Stands in for the claim's SELECT, answering with ids read before another claim committed.

    That is what a second worker sees on a database without row locks when two claims overlap.
    """

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def using(self, alias: str) -> StaleSnapshot:
        return self

    def filter(self, *args: Any, **kwargs: Any) -> StaleSnapshot:
        return self

    def order_by(self, *fields: str) -> StaleSnapshot:
        return self

    def select_for_update(self, **kwargs: Any) -> StaleSnapshot:
        return self

    def values_list(self, *fields: str, **kwargs: Any) -> StaleSnapshot:
        return self

    def __getitem__(self, item: slice) -> list[int]:
        return self.ids[item]


# -- the SQL each database gets -------------------------------------------------------------


@needs_row_locks
@pytest.mark.django_db
def test_claim_locks_rows_with_skip_locked(pending_batch):
    assert connection.features.has_select_for_update_skip_locked
    batch = pending_batch(5)
    with CaptureQueriesContext(connection) as ctx:
        claim = sending._claim(SmsMessage.objects.filter(batch=batch), 100)
    assert claim is not None and len(claim.rows) == 5
    if connection.vendor == "postgresql":
        # One statement: the locking subquery, the move to submitting, the rows read back.
        (claim_sql,) = [q["sql"].upper() for q in ctx.captured_queries]
        assert claim_sql.startswith("UPDATE")
        assert "LIMIT 100 FOR UPDATE SKIP LOCKED))" in claim_sql
        assert "RETURNING" in claim_sql
        return
    select = _claim_select(ctx.captured_queries)
    assert select.endswith("FOR UPDATE SKIP LOCKED")
    if connection.vendor == "mysql":
        # Sorted, InnoDB may read (and lock) every pending row before taking 100 of them.
        assert "ORDER BY" not in select


@needs_sqlite
@pytest.mark.django_db
def test_sqlite_claim_takes_no_row_lock(pending_batch):
    assert not connection.features.has_select_for_update_skip_locked
    batch = pending_batch(5)
    with CaptureQueriesContext(connection) as ctx:
        claim = sending._claim(SmsMessage.objects.filter(batch=batch), 100)
    assert claim is not None and len(claim.rows) == 5
    assert "FOR UPDATE" not in _claim_select(ctx.captured_queries)
    assert not any("FOR UPDATE" in q["sql"].upper() for q in ctx.captured_queries)


@needs_row_locks
@pytest.mark.django_db
def test_without_skip_locked_the_claim_falls_back_to_the_conditional_update(
    pending_batch, monkeypatch
):
    """MariaDB before 10.6 has no SKIP LOCKED: the claim must not ask for it, and still works."""
    monkeypatch.setattr(connection.features, "has_select_for_update_skip_locked", False)
    batch = pending_batch(5)
    with CaptureQueriesContext(connection) as ctx:
        claim = sending._claim(SmsMessage.objects.filter(batch=batch), 100)
    assert claim is not None and len(claim.rows) == 5
    assert "FOR UPDATE" not in _claim_select(ctx.captured_queries)
    assert sending._claim(SmsMessage.objects.filter(batch=batch), 100) is None


# -- exclusive claims without row locks -------------------------------------------------------


@pytest.fixture
def portable_claim(monkeypatch):
    """The claim databases without PostgreSQL's one-statement claim use (db/claim.py)."""
    monkeypatch.setattr(sending.claim_sql, "supported", lambda db: False)


@pytest.mark.django_db
@pytest.mark.usefixtures("portable_claim")
def test_overlapping_claims_cannot_take_the_same_row(pending_batch):
    """Both claims read the same pending ids; the conditional UPDATE lets only the first win."""
    batch = pending_batch(5)
    ids = _pks(batch)
    first = sending._claim(StaleSnapshot(ids), 100)  # type: ignore[arg-type]
    second = sending._claim(StaleSnapshot(ids), 100)  # type: ignore[arg-type]
    assert first is not None and [r["pk"] for r in first.rows] == ids
    assert second is None
    tokens = set(SmsMessage.objects.filter(pk__in=ids).values_list("claim_token", flat=True))
    assert tokens == {first.token}
    assert set(SmsMessage.objects.filter(pk__in=ids).values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
@pytest.mark.usefixtures("portable_claim")
def test_partly_overlapping_claim_takes_only_rows_still_pending(pending_batch):
    batch = pending_batch(8)
    ids = _pks(batch)
    first = sending._claim(StaleSnapshot(ids[:5]), 100)  # type: ignore[arg-type]
    second = sending._claim(StaleSnapshot(ids[2:]), 100)  # type: ignore[arg-type]
    assert first is not None and second is not None
    assert [r["pk"] for r in first.rows] == ids[:5]
    assert [r["pk"] for r in second.rows] == ids[5:]
    assert batch.status_counts() == {status.SUBMITTING: 8}


# -- concurrent claims on a server database ---------------------------------------------------


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_open_claim_holds(pending_batch):
    """While one claim's transaction is still open, a second one takes other rows at once.

    On MariaDB this needs the claim's SELECT unsorted: InnoDB locks every row a filesort reads.
    """
    batch = pending_batch(250)
    ids = _pks(batch)
    base = SmsMessage.objects.filter(batch=batch)
    holding, release = threading.Event(), threading.Event()
    claims: dict[str, sending.Claim | None] = {}
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():  # keeps the row locks until released
                claims["first"] = sending._claim(base, 100)
                holding.set()
                release.wait(30)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            holding.set()
            connection.close()

    def second() -> None:
        try:
            claims["second"] = sending._claim(base, 100)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=first)
    holder.start()
    try:
        assert holding.wait(30)
        other = threading.Thread(target=second)
        other.start()
        other.join(20)
        # Without SKIP LOCKED the second claim would wait here for the first to commit.
        assert not other.is_alive(), "the second claim waited for the first one's locks"
    finally:
        release.set()
        holder.join(30)
    assert not errors, errors
    one, two = claims["first"], claims["second"]
    assert one is not None and two is not None
    taken_one, taken_two = {r["pk"] for r in one.rows}, {r["pk"] for r in two.rows}
    assert len(taken_one) == len(taken_two) == 100
    assert not taken_one & taken_two and taken_one | taken_two <= set(ids)
    assert batch.status_counts() == {status.SUBMITTING: 200, status.PENDING: 50}


# -- MariaDB versions ---------------------------------------------------------------------------


@needs_mariadb
@pytest.mark.django_db
def test_mariadb_is_new_enough_for_django_and_for_skip_locked():
    assert connection.mysql_is_mariadb
    version = connection.mysql_version
    # Django refuses older servers (4.2: 10.4, 5.2: 10.5, 6.0: 10.6); SKIP LOCKED came in 10.6.
    assert version >= connection.features.minimum_database_version
    assert version >= (10, 6)
    assert connection.features.has_select_for_update_skip_locked


@pytest.mark.parametrize(
    ("version", "skip_locked"), [((10, 5, 27), False), ((10, 6, 0), True), ((11, 4, 5), True)]
)
def test_which_mariadb_servers_get_skip_locked(version, skip_locked):
    """The versions Django grants SKIP LOCKED on, that the claim's fallback path depends on."""
    from django.db.backends.mysql.features import DatabaseFeatures

    features = DatabaseFeatures(SimpleNamespace(mysql_is_mariadb=True, mysql_version=version))
    if version < features.minimum_database_version:
        pytest.skip(f"Django {django.get_version()} refuses MariaDB {version} anyway")
    assert features.has_select_for_update_skip_locked is skip_locked
