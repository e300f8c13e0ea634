"""Settings for the example project: the way the README tells users to set the app up.

Environment variables choose the services; with none set it runs on SQLite (file
``example_project/db.sqlite3``), sends to the local Exotel stand-in on port 8765 and uses
Redis on 127.0.0.1:6379 as the Celery broker.

* ``DATABASE_URL`` (``postgres://user:password@host:5432/name`` or ``sqlite:///path``), or
  ``EXAMPLE_DB=postgres`` with the usual ``PG*`` variables; ``EXAMPLE_DB_PATH`` moves the
  SQLite file.
* ``CELERY_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``).
* ``EXOTEL_BASE_URL``, ``EXOTEL_CALLBACK_BASE_URL``, ``EXOTEL_RATE_LIMIT_STORAGE``; and
  ``EXOTEL_SMS_OVERRIDES`` (JSON) for anything else in ``EXOTEL_SMS`` (the demo uses it to
  hand its ports to the Celery worker it starts).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import django

BASE_DIR = Path(__file__).resolve().parent.parent

# A demo key: set DJANGO_SECRET_KEY for anything reachable by others.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-insecure-demo-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_exotel_sms",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _sqlite(path: str) -> dict[str, Any]:
    # Several processes write at once (web server, worker): wait for locks instead of failing,
    # and take the write lock when a transaction starts (Django 5.1+).
    options: dict[str, Any] = {"timeout": 30}
    engine = "django.db.backends.sqlite3"
    if django.VERSION >= (5, 1):
        options["transaction_mode"] = "IMMEDIATE"
        options["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    else:
        engine = "example_project.sqlite_backend"  # the same, by hand
    return {"ENGINE": engine, "NAME": path, "OPTIONS": options}


def _database() -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("sqlite:"):
        return _sqlite(url.split("://", 1)[1] if "://" in url else url[len("sqlite:") :])
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if url:
        raise ValueError("DATABASE_URL must start with postgres://, postgresql:// or sqlite://")
    if os.environ.get("EXAMPLE_DB") == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "exotel_example"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
    return _sqlite(os.environ.get("EXAMPLE_DB_PATH") or str(BASE_DIR / "db.sqlite3"))


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # the demo user has a simple password
LANGUAGE_CODE = "en-us"
TIME_ZONE = "Asia/Kolkata"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"

# -- Celery ------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sends are retried with countdowns up to RETRY_BACKOFF_MAX; keep this well above it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    # Recover stale claims, resume lost enqueues, ask Exotel about callbacks that never came.
    "exotel-sms-reconcile": {
        "task": "django_exotel_sms.tasks.reconcile",
        "schedule": 300.0,
    },
    # Wake the senders for scheduled and window-deferred messages that became due: they
    # leave within this interval of their time (EXOTEL_SMS['RELEASE_INTERVAL'], 5 s).
    "exotel-sms-release-due": {
        "task": "django_exotel_sms.tasks.release_due",
        "schedule": 5.0,
    },
    # Keep the admin reports' daily roll-up current (their lag is this interval).
    "exotel-sms-rollup": {
        "task": "django_exotel_sms.tasks.rollup",
        "schedule": 60.0,
    },
}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=0.3):
            return True
    except OSError:
        return False


def _rate_limit_storage() -> str | None:
    # One request budget for all workers needs shared storage; per-process memory otherwise
    # (the demo's embedded worker: one process). None would mean the broker's Redis.
    if "EXOTEL_RATE_LIMIT_STORAGE" in os.environ:
        return os.environ["EXOTEL_RATE_LIMIT_STORAGE"] or None
    if _reachable(CELERY_BROKER_URL):
        parts = urlsplit(CELERY_BROKER_URL)
        return f"{parts.scheme}://{parts.netloc}/1"
    return "memory://"


# -- django-exotel-sms -------------------------------------------------------------------
EXOTEL_SMS: dict[str, Any] = {
    # The local stand-in's published credentials; use your Exotel account's in production.
    "ACCOUNT_SID": os.environ.get("EXOTEL_ACCOUNT_SID", "sandbox"),
    "API_KEY": os.environ.get("EXOTEL_API_KEY", "sandboxkey"),
    "API_TOKEN": os.environ.get("EXOTEL_API_TOKEN", "sandboxtoken"),
    # Unset BASE_URL (and set SUBDOMAIN) to talk to Exotel itself.
    "BASE_URL": os.environ.get("EXOTEL_BASE_URL", "http://127.0.0.1:8765"),
    "DEFAULT_SENDER": "EXDEMO",
    "DLT_ENTITY_ID": "1101000000000000001",
    # Where Exotel (here: the stand-in) posts status callbacks; a public https URL in production.
    "CALLBACK_BASE_URL": os.environ.get(
        "EXOTEL_CALLBACK_BASE_URL", "http://127.0.0.1:8000/exotel/"
    ),
    "RATE_LIMIT_STORAGE": _rate_limit_storage(),
}
if os.environ.get("EXOTEL_SMS_OVERRIDES"):
    EXOTEL_SMS.update(json.loads(os.environ["EXOTEL_SMS_OVERRIDES"]))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_exotel_sms": {"handlers": ["console"], "level": "WARNING"}},
}
