"""The compatibility matrix: Django x database, and Celery on each broker.

Sessions (``nox -l`` lists them):

* ``django-{4.2,5.2,6}-{sqlite,postgres,mysql}`` -- the test suite on that Django
  (4.2 LTS and 5.2 LTS on Python 3.11, the newest 6.x on Python 3.12, which it needs)
  and that database. SQLite runs everything but the real-worker tests (they need a
  database shared with another process); PostgreSQL runs the worker tests too;
  MariaDB runs everything but the worker tests, which are written for PostgreSQL.
* ``brokers-{redis,rabbitmq}`` -- the real Celery worker tests (tests/test_celery_worker.py
  and tests/test_brokers.py) on PostgreSQL with that broker; the rate limiter stays on Redis.

Browser and packaging tests are not part of any session: ``scripts/test.sh`` runs them.

What CI runs (``scripts/test.sh``; 90 minutes on 2 cores). The main virtualenv (Python
3.11, Django 5.2) runs the whole suite on PostgreSQL with Redis, the browser and packaging
tests included, then on SQLite; then ``nox -t ci`` runs the sessions tagged ``ci``:

* ``django-4.2-sqlite``  -- the oldest supported Django;
* ``django-6-postgres``  -- the newest Django, real workers included;
* ``django-5.2-mysql``   -- MariaDB on the current LTS (SKIP LOCKED claims, version checks);
* ``django-6-mysql``     -- MariaDB on the newest Django (which needs MariaDB 10.11+);
* ``brokers-rabbitmq``   -- every real-worker test over RabbitMQ.

So every database, broker, and the oldest and newest Django run at least once per CI run:
17 minutes end to end, measured (docs/compatibility.rst has the timings). The rest of the
matrix runs on demand: ``nox`` (everything) or ``nox -s NAME``.

The databases and brokers are the local services that ``scripts/services.sh`` starts
(PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306 as root with no password, Redis
127.0.0.1:6379, RabbitMQ amqp://guest:guest@127.0.0.1:5672//). mysqlclient compiles against
Debian's libmariadb-dev, which ``scripts/mysql-setup.sh`` installs when it is missing.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# name -> (requirement, Python). Django 6 needs Python >= 3.12; 4.2 supports up to 3.12.
DJANGO = {
    "4.2": ("Django>=4.2,<5.0", "3.11"),
    "5.2": ("Django>=5.2,<6.0", "3.11"),
    "6": ("Django>=6.0,<7.0", "3.12"),
}
DATABASES = ("sqlite", "postgres", "mysql")
BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
CI_SESSIONS = {
    "django-4.2-sqlite",
    "django-6-postgres",
    "django-5.2-mysql",
    "django-6-mysql",
    "brokers-rabbitmq",
}
NOT_HERE = "not browser and not packaging"
WORKER_TESTS = ("tests/test_celery_worker.py", "tests/test_brokers.py")


def _expose_pyenv_interpreters() -> None:
    """pyenv's shims only answer for the active version: put every installed 3.x on PATH."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob(os.path.join(root, "versions", "3.1[0-9]*", "bin")), reverse=True)
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_expose_pyenv_interpreters()


def _install(session: nox.Session, django: str, db: str) -> None:
    extras = ["test", "postgres"]
    if db == "mysql":
        session.run("bash", str(ROOT / "scripts" / "mysql-setup.sh"), external=True)
        extras.append("mysql")
    session.install("-e", f".[{','.join(extras)}]", django)
    session.run("python", "-m", "django", "--version")


def _env(session: nox.Session, db: str, **extra: str) -> dict[str, str]:
    # One test database per session name: sessions may run side by side with the main run.
    safe = session.name.replace(".", "").replace("-", "_")
    return {"TEST_DB": db, "TEST_DB_NAME": f"test_des_{safe}", **extra}


def _make_tests_session(name: str, django: str, python: str, db: str) -> None:
    def run(session: nox.Session) -> None:
        _install(session, django, db)
        marks = NOT_HERE if db == "postgres" else f"{NOT_HERE} and not celery_worker"
        session.run("python", "-m", "pytest", "-m", marks, *session.posargs, env=_env(session, db))

    run.__doc__ = f"The suite on {django} ({python}) and {db}."
    tags = ["ci"] if name in CI_SESSIONS else []
    nox.session(name=name, python=python, tags=tags, download_python="never")(run)


for _dj, (_req, _py) in DJANGO.items():
    for _db in DATABASES:
        _make_tests_session(f"django-{_dj}-{_db}", _req, _py, _db)


def _make_broker_session(name: str, url: str) -> None:
    def run(session: nox.Session) -> None:
        req, _ = DJANGO["5.2"]
        _install(session, req, "postgres")
        env = _env(session, "postgres", CELERY_BROKER_URL=url)
        session.run("python", "-m", "pytest", *WORKER_TESTS, *session.posargs, env=env)

    run.__doc__ = f"The real-worker tests on PostgreSQL over {url.split(':', 1)[0]}."
    tags = ["ci"] if name in CI_SESSIONS else []
    nox.session(name=name, python=DJANGO["5.2"][1], tags=tags, download_python="never")(run)


for _broker, _url in BROKERS.items():
    _make_broker_session(f"brokers-{_broker}", _url)
