"""Settings for the test suite. ``TEST_DB`` picks the database: sqlite, postgres or mysql."""

from __future__ import annotations

import os

SECRET_KEY = "test-secret-key-not-for-production"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_exotel_sms",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

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

_db = os.environ.get("TEST_DB", "sqlite")
if _db == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("PGDATABASE", "test"),
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "TEST": {"NAME": os.environ.get("TEST_DB_NAME", "test_django_exotel_sms")},
        }
    }
elif _db == "mysql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": "test",
            "USER": "root",
            "HOST": "127.0.0.1",
            "PORT": "3306",
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": os.environ.get("TEST_DB_NAME", "test_django_exotel_sms"),
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", ":memory:"),
            "TEST": {"NAME": os.environ.get("SQLITE_TEST_PATH") or None},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
STATIC_URL = "/static/"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_TASK_ALWAYS_EAGER = False
# A worker test may run an embedded beat (``worker -B``) with the release_due entry.
if os.environ.get("TEST_BEAT_RELEASE_INTERVAL"):
    CELERY_BEAT_SCHEDULE = {
        "release-due": {
            "task": "django_exotel_sms.tasks.release_due",
            "schedule": float(os.environ["TEST_BEAT_RELEASE_INTERVAL"]),
        }
    }

EXOTEL_SMS = {
    "ACCOUNT_SID": "sandbox",
    "API_KEY": "sandboxkey",
    "API_TOKEN": "sandboxtoken",
    "BASE_URL": "http://127.0.0.1:9",
    "DEFAULT_SENDER": "EXOTEL",
    "DLT_ENTITY_ID": "1101000000000000001",
    "BACKEND": "django_exotel_sms.backends.locmem.LocmemBackend",
    "CALLBACK_BASE_URL": "https://sms.example.com/exotel/",
    "RATE_LIMIT": "100000/minute",
    "GET_RATE_LIMIT": "100000/minute",
    "RETRY_BACKOFF": 1.5,
    "RETRY_BACKOFF_MAX": 2.0,
    # Per-process memory, explicitly: tests need no Redis for the limiter, and concurrent
    # runs do not share windows. Real-worker tests point it at Redis (TEST_RATE_DB).
    "RATE_LIMIT_STORAGE": "memory://",
    # No sending windows, so a test's outcome never depends on the hour it runs at;
    # tests/test_scheduling.py puts the shipped default back under an injected clock.
    "SENDING_WINDOWS": [],
}
# ...which the check W036 rightly flags next to a non-eager Celery: here one process sends.
SILENCED_SYSTEM_CHECKS = ["django_exotel_sms.W036"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_exotel_sms": {"handlers": ["console"], "level": "WARNING"}},
}

# Worker subprocesses started by the tests get their overrides through the environment.
if os.environ.get("EXOTEL_SMS_OVERRIDES"):
    import json

    EXOTEL_SMS.update(json.loads(os.environ["EXOTEL_SMS_OVERRIDES"]))
