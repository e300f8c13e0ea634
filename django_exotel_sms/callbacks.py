"""Signed callback URLs: Exotel does not sign its callbacks, so the URL proves we issued it.

A token names either one message (``m``) or one batch (``b``): a static-bulk request
shares one StatusCallback URL for all its recipients, so the posted ``SmsSid`` must
then belong to that batch. Tokens use Django's signing with a salt of their own,
support key rotation (``EXOTEL_SMS['SIGNING_KEYS']``, newest first, or ``SECRET_KEY``
with ``SECRET_KEY_FALLBACKS``) and expire after ``CALLBACK_TOKEN_MAX_AGE`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings as django_settings
from django.core import signing
from django.views.decorators.debug import sensitive_variables

from .conf import get_settings

STATUS_SALT = "django_exotel_sms.status-callback"
CLICK_SALT = "django_exotel_sms.click-callback"
MESSAGE = "m"
BATCH = "b"


@dataclass(frozen=True)
class CallbackScope:
    kind: str  # MESSAGE or BATCH
    pk: int


@sensitive_variables("keys", "key", "fallbacks")  # kept off Django's DEBUG page
def _signer(salt: str) -> signing.TimestampSigner:
    keys = get_settings().signing_keys
    fallbacks: list[str | bytes]
    if keys:
        key, fallbacks = keys[0], list(keys[1:])
    else:
        key = django_settings.SECRET_KEY
        fallbacks = list(getattr(django_settings, "SECRET_KEY_FALLBACKS", []))
    return signing.TimestampSigner(key=key, fallback_keys=fallbacks, salt=salt)


def make_token(kind: str, pk: int, *, salt: str = STATUS_SALT) -> str:
    if kind not in (MESSAGE, BATCH):
        raise ValueError(f"kind must be {MESSAGE!r} or {BATCH!r}")
    return _signer(salt).sign(f"{kind}{int(pk)}")


def read_token(token: str, *, salt: str = STATUS_SALT) -> CallbackScope:
    """The scope a token grants; raises ``signing.BadSignature`` (or SignatureExpired)."""
    value = _signer(salt).unsign(token, max_age=get_settings().callback_token_max_age)
    kind, digits = value[:1], value[1:]
    if kind not in (MESSAGE, BATCH) or not digits.isdigit():
        raise signing.BadSignature("malformed callback token")
    return CallbackScope(kind, int(digits))


def _url(path: str) -> str | None:
    s = get_settings()
    if not s.status_callbacks or not s.callback_base_url:
        return None
    return f"{s.callback_base_url.rstrip('/')}/{path}"


def status_callback_url(kind: str, pk: int) -> str | None:
    """Absolute StatusCallback URL for a message or batch, or None when callbacks are off."""
    return _url(f"status/{make_token(kind, pk)}/")


def click_callback_url(kind: str, pk: int) -> str | None:
    return _url(f"click/{make_token(kind, pk, salt=CLICK_SALT)}/")
