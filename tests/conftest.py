from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_exotel_sms import ratelimit
from django_exotel_sms.backends import locmem, reset_backends
from tests.celery_app import app as celery_app

# One Celery app for every thread of the test process. Celery's "current app" is
# thread-local and falls back to the *default* app elsewhere; if anything touched
# ``current_app`` first, the default would be a bare fallback app and tasks enqueued from
# another thread (live server, API race tests) would miss patches and eager mode.
celery_app.set_default()


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    locmem.clear()
    reset_backends()
    ratelimit.reset()
    yield
    reset_backends()


@pytest.fixture(scope="session")
def sandbox_server():
    from django_exotel_sms.sandbox import SandboxServer

    server = SandboxServer(
        account_sid="sandbox", api_key="sandboxkey", api_token="sandboxtoken", callback_delay=0.05
    ).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """A clean local Exotel, with the app configured to send to it."""
    sandbox_server.reset()
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
        "BASE_URL": sandbox_server.url,
        # Callbacks go nowhere (refused at once) unless a test points them at a live server.
        "CALLBACK_BASE_URL": "http://127.0.0.1:9/exotel/",
    }
    reset_backends()
    yield sandbox_server
    reset_backends()
