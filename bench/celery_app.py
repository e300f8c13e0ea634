"""The Celery app benchmark workers run: ``celery -A bench.celery_app worker -c 2``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

app = Celery("django_exotel_sms_bench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_exotel_sms"])
