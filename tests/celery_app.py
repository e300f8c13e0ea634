"""The Celery app that worker subprocesses in the tests run (``celery -A tests.celery_app``)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

if os.environ.get("TEST_SIMCLOCK"):  # a worker on the tests' simulated clock (tests/simclock.py)
    from tests import simclock

    simclock.install()

app = Celery("django_exotel_sms_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["django_exotel_sms"])


@app.task(name="tests.send_to_one", ignore_result=True)
def send_to_one(number: str) -> None:
    """A project's task composing a message in a worker (as an OTP view's task would)."""
    from django_exotel_sms.models import SmsMessage

    SmsMessage.objects.send_bulk(to=[number], body="Your code is 1234")
