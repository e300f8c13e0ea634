"""The project's Celery app: ``celery -A example_project worker`` (add ``beat`` for reconcile)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
# Every CELERY_* Django setting configures Celery (CELERY_BROKER_URL, CELERY_BEAT_SCHEDULE...).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
