"""A transient database error in a callback view answers 503 with Retry-After, not 500.

Exotel retries a callback that failed, so a report that met a locked SQLite file or a lost
connection is kept if we say "later". Programming errors still raise (500): retrying them
cannot help, and hiding them would hide a bug.
"""

from __future__ import annotations

import sqlite3
import types

import psycopg
import psycopg.errors
import pytest
from django.db import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from django.db.utils import DatabaseErrorWrapper

from django_exotel_sms import status, views
from django_exotel_sms.backends import locmem
from django_exotel_sms.db.transient import is_transient
from django_exotel_sms.models import ClickEvent, SmsMessage, StatusEvent

from .test_callbacks import click_form, local_path, report

pytestmark = pytest.mark.django_db


def wrapped(driver_error: Exception) -> Exception:
    """The driver's error as Django raises it: its own class, ``from`` the driver's."""
    driver = psycopg if isinstance(driver_error, psycopg.Error) else sqlite3
    try:
        with DatabaseErrorWrapper(types.SimpleNamespace(Database=driver)):
            raise driver_error
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError("not raised")


class FakeMySQLError(Exception):
    pass


FakeMySQLError.__module__ = "MySQLdb._exceptions"


def mysql(code: int, text: str) -> Exception:
    err = OperationalError(code, text)
    err.__cause__ = FakeMySQLError(code, text)
    return err


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (wrapped(sqlite3.OperationalError("database is locked")), True),
        (wrapped(sqlite3.OperationalError("database table is locked: sms")), True),
        (wrapped(sqlite3.OperationalError("no such table: django_exotel_sms_smsmessage")), False),
        (wrapped(sqlite3.OperationalError('near "SELEC": syntax error')), False),
        (wrapped(psycopg.errors.DeadlockDetected("deadlock detected")), True),
        (wrapped(psycopg.errors.LockNotAvailable("could not obtain lock")), True),
        (wrapped(psycopg.errors.SerializationFailure("could not serialize")), True),
        (wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (wrapped(psycopg.OperationalError("connection failed: Connection refused")), True),
        (wrapped(psycopg.errors.ProgramLimitExceeded("index row size exceeds")), False),
        (wrapped(psycopg.errors.UndefinedTable("relation does not exist")), False),
        (mysql(1213, "Deadlock found when trying to get lock"), True),
        (mysql(2006, "MySQL server has gone away"), True),
        (mysql(1054, "Unknown column 'x' in 'field list'"), False),
        (InterfaceError("connection already closed"), True),
        (IntegrityError("UNIQUE constraint failed"), False),
        (ProgrammingError("relation does not exist"), False),
        (ValueError("not a database error"), False),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, Exception) else str(v),
)
def test_which_database_errors_are_transient(error, transient):
    assert is_transient(error) is transient


LOCKED = wrapped(sqlite3.OperationalError("database is locked"))


def _raise(error: Exception):
    def fail(*args, **kwargs):
        raise error

    return fail


@pytest.fixture
def sent(django_capture_on_commit_callbacks):
    """One message sent through the locmem backend, and its status and click URLs' paths."""
    with django_capture_on_commit_callbacks(execute=True):
        message = SmsMessage.objects.send(
            "+919876543210",
            "Track https://shop.example.com/orders/42",
            send_async=False,
            shorten_urls=True,
            shorten_url_params={"tracking": True},
        )
    message.refresh_from_db()
    options = locmem.outbox[-1].options
    click_url = options["shorten_url_params"]["click_tracking_callback_url"]
    return message, local_path(options["status_callback"]), local_path(click_url)


def _recording_fails(monkeypatch, error: Exception) -> None:
    """Recording the report raises, on either path: the ORM one (``apply_report``) or, on
    PostgreSQL, the one statement that locates and records at once (``apply_by_sid``)."""
    monkeypatch.setattr(views, "apply_report", _raise(error))
    monkeypatch.setattr(views, "apply_by_sid", _raise(error))


@pytest.mark.parametrize("error", [LOCKED, InterfaceError("connection already closed")])
def test_status_callback_answers_503_with_retry_after_on_a_transient_error(
    client, monkeypatch, sent, error
):
    message, url, _ = sent
    events = StatusEvent.objects.count()
    _recording_fails(monkeypatch, error)
    response = client.post(url, report(message.sid))
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    message.refresh_from_db()
    assert message.status == status.QUEUED and StatusEvent.objects.count() == events
    # Exotel's retry, once the database answers again, is applied.
    monkeypatch.undo()
    assert client.post(url, report(message.sid)).status_code == 200
    message.refresh_from_db()
    assert message.status == status.SENT


@pytest.mark.parametrize(
    "error",
    [
        wrapped(sqlite3.OperationalError("no such table: django_exotel_sms_smsmessage")),
        ProgrammingError("column does not exist"),
        IntegrityError("NOT NULL constraint failed"),
    ],
)
def test_status_callback_does_not_hide_programming_errors(client, monkeypatch, sent, error):
    message, url, _ = sent
    _recording_fails(monkeypatch, error)
    with pytest.raises(type(error)):
        client.post(url, report(message.sid))


def test_status_callback_503_when_locating_the_message_meets_a_lock(client, monkeypatch, sent):
    message, url, _ = sent
    monkeypatch.setattr(views, "locate", _raise(LOCKED))
    monkeypatch.setattr(views, "apply_by_sid", _raise(LOCKED))  # locates too, on PostgreSQL
    response = client.post(url, report(message.sid))
    assert (response.status_code, response["Retry-After"]) == (503, "5")


def test_click_callback_answers_503_on_a_transient_error_and_raises_on_a_bug(
    client, monkeypatch, sent
):
    message, _, url = sent
    monkeypatch.setattr(views, "_click_message", _raise(LOCKED))
    response = client.post(url, click_form(message.sid))
    assert response.status_code == 503 and int(response["Retry-After"]) > 0
    assert not ClickEvent.objects.exists()
    monkeypatch.setattr(views, "_click_message", _raise(ProgrammingError("bug")))
    with pytest.raises(ProgrammingError):
        client.post(url, click_form(message.sid))
