"""Django settings for the benchmarks: the test settings, on PostgreSQL, tuned for load.

Environment: ``BENCH_DB`` (database name, default ``bench_exotel``), ``BENCH_URLCONF``
(``bench.urls`` or ``bench.bare_urls``), ``EXOTEL_SMS_OVERRIDES`` (JSON, as the tests use:
how the driver hands the sandbox URL and fault-run settings to workers and gunicorn).
"""

from __future__ import annotations

import json
import os

os.environ["TEST_DB"] = "postgres"  # tests.settings picks its DATABASES from this

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, EXOTEL_SMS

DEBUG = False  # no query log growing in memory
ROOT_URLCONF = os.environ.get("BENCH_URLCONF", "bench.urls")
WSGI_APPLICATION = "bench.wsgi.application"

DATABASES["default"]["NAME"] = os.environ.get("BENCH_DB", "bench_exotel")
# Persistent connections, as a production deployment would have (or a pooler).
DATABASES["default"]["CONN_MAX_AGE"] = 60

# Redis db 13 is the benchmarks' broker, db 12 their rate limiter; nothing else is touched.
CELERY_BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")

EXOTEL_SMS = {
    **EXOTEL_SMS,
    "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
    "BASE_URL": "http://127.0.0.1:9",  # the driver passes the sandbox's URL
    "CALLBACK_BASE_URL": None,
    # High enough that the limiter never decides the result; still a Redis round trip a request.
    "RATE_LIMIT": "100000/minute",
    "GET_RATE_LIMIT": "100000/minute",
    "RATE_LIMIT_STORAGE": os.environ.get("BENCH_RATE_LIMIT_URL", "redis://127.0.0.1:6379/12"),
    # Package defaults for retries (tests.settings shortens them).
    "RETRY_BACKOFF": 2.0,
    "RETRY_BACKOFF_MAX": 300.0,
}
if os.environ.get("EXOTEL_SMS_OVERRIDES"):
    EXOTEL_SMS.update(json.loads(os.environ["EXOTEL_SMS_OVERRIDES"]))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_exotel_sms": {"handlers": ["console"], "level": "WARNING"}},
}
