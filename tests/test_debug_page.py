"""Credentials never reach Django's DEBUG error page (the technical 500 response).

Each case raises a real exception through the app's frames that hold the settings or the
credentials, renders the page Django would show with DEBUG on, and searches it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

from django_exotel_sms import callbacks
from django_exotel_sms.backends.exotel import ExotelBackend
from django_exotel_sms.conf import get_account, get_settings
from django_exotel_sms.models import SmsMessage

API_KEY = "apikey9f3c2e"
API_TOKEN = "apitoken7d41b8"
SIGNING_KEY = "signingkey5e2a90"
SECRETS = (API_KEY, API_TOKEN, SIGNING_KEY)
BASE: dict[str, Any] = {
    "ACCOUNT_SID": "acme",
    "API_KEY": API_KEY,
    "API_TOKEN": API_TOKEN,
    "SIGNING_KEYS": [SIGNING_KEY],
    "DEFAULT_SENDER": "ACMEIN",
    "DLT_ENTITY_ID": "1101000000000000001",
    "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
}


def error_page(call: Callable[[], object]) -> str:
    """The DEBUG page for the exception ``call`` raises (it must raise)."""
    try:
        call()
    except Exception:
        response = technical_500_response(RequestFactory().get("/sms/"), *sys.exc_info())
    else:
        raise AssertionError("expected an exception")
    return response.content.decode()


def send() -> SmsMessage:
    return SmsMessage.objects.send("+919876500000", "Hello", send_async=False)


CASES: dict[str, tuple[dict[str, Any], Callable[[], object]]] = {
    # get_settings() reads the whole dict; a non-number fails there.
    "get_settings": ({"CHUNK_SIZE": "many"}, get_settings),
    # get_account() holds the account's dict, token included.
    "get_account": ({"CONNECT_TIMEOUT": "slow"}, get_account),
    "named_account": (
        {"ACCOUNTS": {"promo": {**BASE, "READ_TIMEOUT": "slow"}}},
        lambda: get_account("promo"),
    ),
    # The client's constructor holds the key and token as arguments.
    "client": ({"BASE_URL": "ftp://exotel.example"}, ExotelBackend),
    # Signing keys given as a dict (not a list) fail inside the signer's set-up.
    "signing_keys": (
        {"SIGNING_KEYS": {"current": SIGNING_KEY}},
        lambda: callbacks.make_token(
            callbacks.MESSAGE, 1, datetime(2026, 1, 1, tzinfo=timezone.utc)
        ),
    ),
    # The composer reads the account's settings before the backend can be imported.
    "compose": ({"BACKEND": "no_such_module.Backend"}, send),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES)
def test_debug_page_never_shows_credentials(settings: Any, case: str) -> None:
    changes, call = CASES[case]
    settings.EXOTEL_SMS = {**BASE, **changes}
    page = error_page(call)
    assert "Local vars" in page  # the frames' variables were rendered
    assert "<h1>TypeError" not in page  # failed where meant to, not on a wrong call
    assert [secret for secret in SECRETS if secret in page] == []


def test_the_page_does_show_ordinary_locals(settings: Any) -> None:
    """The search above can fail: the page shows a frame's other variables."""
    settings.EXOTEL_SMS = {**BASE, "CONNECT_TIMEOUT": "slow"}
    page = error_page(lambda: get_account("default"))
    assert "&#x27;default&#x27;" in page  # get_account's alias argument
