"""What surrounds the app: SQLite's transaction mode and where the rate limit is counted.

The README's setup runs a web server and a worker on startproject's SQLite file, and
several worker processes: SQLite must take its write lock when a transaction begins, and
the rate limit must be counted in one shared place -- by default, the Celery broker's Redis.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import redis
from django.db import transaction
from django.db.utils import ConnectionHandler

from django_exotel_sms import checks_deployment, ratelimit
from django_exotel_sms.checks_deployment import PACKAGE_SQLITE, sqlite_messages

RATE_DB = int(os.environ.get("TEST_RATE_DB", "14"))
REDIS_URL = f"redis://127.0.0.1:6379/{RATE_DB}"


def ids(messages) -> list[str]:
    return [m.id for m in messages]


# -- SQLite ---------------------------------------------------------------------------------


def sqlite(name: str = "/srv/mysite/db.sqlite3", engine: str = "django.db.backends.sqlite3", **o):
    return {"ENGINE": engine, "NAME": name, "OPTIONS": o}


@pytest.mark.parametrize("modern", [True, False], ids=["django>=5.1", "django<5.1"])
def test_sqlite_file_with_deferred_transactions_warns_and_names_the_fix(modern):
    (message,) = sqlite_messages("default", sqlite(), has_transaction_mode=modern)
    assert message.id == "django_exotel_sms.W035"
    assert "database is locked" in message.msg
    if modern:
        assert '"transaction_mode": "IMMEDIATE"' in message.hint
    else:
        assert "Django < 5.1" in message.hint and PACKAGE_SQLITE in message.hint
    (message,) = sqlite_messages(
        "default", sqlite(transaction_mode="DEFERRED"), has_transaction_mode=modern
    )
    assert message.id == ("django_exotel_sms.W035" if modern else "django_exotel_sms.E035")


@pytest.mark.parametrize("modern", [True, False], ids=["django>=5.1", "django<5.1"])
def test_sqlite_that_locks_up_front_or_lives_in_memory_passes(modern):
    def check(settings_dict):
        return sqlite_messages("default", settings_dict, has_transaction_mode=modern)

    if modern:
        assert check(sqlite(transaction_mode="IMMEDIATE", timeout=20)) == []
        assert check(sqlite(transaction_mode="exclusive")) == []
    assert check(sqlite(engine=PACKAGE_SQLITE)) == []
    assert check(sqlite(engine=PACKAGE_SQLITE, timeout=5)) == []
    assert check(sqlite(name=":memory:")) == []
    assert check(sqlite(name="file:memorydb?mode=memory&cache=shared")) == []


def test_transaction_mode_on_old_django_is_an_error_pointing_to_the_backend():
    (message,) = sqlite_messages(
        "default", sqlite(transaction_mode="IMMEDIATE"), has_transaction_mode=False
    )
    assert message.id == "django_exotel_sms.E035"
    assert PACKAGE_SQLITE in message.hint


def test_registered_check_reads_the_database_the_app_writes(monkeypatch, tmp_path):
    handler = ConnectionHandler({"default": sqlite(str(tmp_path / "db.sqlite3"))})
    monkeypatch.setattr(checks_deployment, "connections", handler)
    assert ids(checks_deployment.check_sqlite_transaction_mode()) == ["django_exotel_sms.W035"]
    handler = ConnectionHandler({"default": sqlite(str(tmp_path / "db.sqlite3"), PACKAGE_SQLITE)})
    monkeypatch.setattr(checks_deployment, "connections", handler)
    assert checks_deployment.check_sqlite_transaction_mode() == []


def _other_writer_is_locked_out(path: Path) -> bool:
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock, if nobody else holds it
        other.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return True
    finally:
        other.close()


@pytest.mark.django_db  # lets pytest-django allow connections (to a file of its own here)
@pytest.mark.parametrize(
    ("engine", "locks_up_front"),
    [("django.db.backends.sqlite3", False), (PACKAGE_SQLITE, True)],
)
def test_package_backend_takes_the_write_lock_when_a_transaction_begins(
    tmp_path, monkeypatch, engine, locks_up_front
):
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    handler = ConnectionHandler({"default": sqlite(str(path), engine)})
    monkeypatch.setattr(transaction, "connections", handler)  # atomic() on this one
    connection = handler["default"]
    try:
        with transaction.atomic(using="default"):
            connection.cursor().execute("SELECT count(*) FROM t")  # a reader, so far
            assert _other_writer_is_locked_out(path) is locks_up_front
        if engine == PACKAGE_SQLITE:
            assert connection.get_connection_params()["timeout"] == 20
    finally:
        handler.close_all()


# -- the rate limit's store -----------------------------------------------------------------


@pytest.fixture
def celery_conf(monkeypatch, settings):
    """A project's Celery settings, as the limiter sees them; RATE_LIMIT_STORAGE unset."""
    from celery import Celery

    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_STORAGE": None}
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL"):  # they would win
        monkeypatch.delenv(name, raising=False)
    app = Celery("mysite", set_as_current=False)
    monkeypatch.setattr(ratelimit, "celery_conf", lambda: app.conf)
    return app.conf


@pytest.mark.parametrize(
    ("broker", "eager", "storage"),
    [
        ("redis://127.0.0.1:6379/3", False, "redis://127.0.0.1:6379/3"),
        ("rediss://cache.example.com:6380/0", False, "rediss://cache.example.com:6380/0"),
        ("redis://a:6379/0;redis://b:6379/0", False, "redis://a:6379/0"),
        ("redis://127.0.0.1:6379/3", True, "memory://"),  # eager: no workers
        ("amqp://guest:guest@127.0.0.1:5672//", False, "memory://"),
        (None, False, "memory://"),
    ],
)
def test_storage_defaults_to_the_celery_brokers_redis(
    celery_conf, monkeypatch, broker, eager, storage
):
    celery_conf.broker_url = broker
    celery_conf.task_always_eager = eager
    assert ratelimit.storage_uri() == storage


def test_explicit_storage_wins(celery_conf, monkeypatch, settings):
    celery_conf.broker_url = "redis://127.0.0.1:6379/3"
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_STORAGE": "memory://"}
    assert ratelimit.storage_uri() == "memory://"


def test_by_default_every_process_shares_one_window_through_the_broker(
    celery_conf, monkeypatch, settings
):
    redis.Redis.from_url(REDIS_URL).flushdb()
    celery_conf.broker_url = REDIS_URL
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT": "3/minute"}
    ratelimit.reset()
    try:
        assert all(ratelimit.acquire("default", "post", max_wait=0) for _ in range(3))
        ratelimit._limiters.clear()  # another process: nothing in its memory
        assert ratelimit.acquire("default", "post", max_wait=0.05) is False
        keys = redis.Redis.from_url(REDIS_URL).keys("*")
        assert keys and all(k.startswith(b"LIMITS:") for k in keys)  # apart from Celery's
    finally:
        ratelimit.reset()
        redis.Redis.from_url(REDIS_URL).flushdb()


def test_check_warns_about_a_per_process_limit_next_to_real_workers(
    celery_conf, monkeypatch, settings
):
    celery_conf.broker_url = "amqp://guest:guest@127.0.0.1:5672//"
    (message,) = checks_deployment.check_rate_limit_storage()
    assert message.id == "django_exotel_sms.W036" and "RATE_LIMIT_STORAGE" in message.hint
    celery_conf.task_always_eager = True
    assert checks_deployment.check_rate_limit_storage() == []
    celery_conf.task_always_eager = False
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_STORAGE": REDIS_URL}
    assert checks_deployment.check_rate_limit_storage() == []
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_STORAGE": None}
    celery_conf.broker_url = "redis://127.0.0.1:6379/3"
    assert checks_deployment.check_rate_limit_storage() == []
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RATE_LIMIT_STORAGE": "memory://"}
    assert ids(checks_deployment.check_rate_limit_storage()) == ["django_exotel_sms.W036"]


def test_a_subclass_of_the_package_backend_passes(monkeypatch, tmp_path):
    engine = "example_project.sqlite_backend"  # the example project's: the package's + WAL
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "example_project"))
    handler = ConnectionHandler({"default": sqlite(str(tmp_path / "db.sqlite3"), engine)})
    monkeypatch.setattr(checks_deployment, "connections", handler)
    assert checks_deployment.check_sqlite_transaction_mode() == []


@pytest.mark.parametrize("value", ["acme", {"CHUNK_SIZE": "abc"}, {"RATE_LIMIT_STORAGE": 3}])
def test_rate_limit_check_survives_settings_other_checks_report(celery_conf, settings, value):
    celery_conf.broker_url = "amqp://guest:guest@127.0.0.1:5672//"
    settings.EXOTEL_SMS = value
    assert ids(checks_deployment.check_rate_limit_storage()) in ([], ["django_exotel_sms.W036"])
