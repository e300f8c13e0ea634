"""Signed callback URLs: Exotel does not sign its callbacks, so the URL proves we issued it.

A token names either one message (``m``) or one batch (``b``): a static-bulk request
shares one StatusCallback URL for all its recipients, so the posted ``SmsSid`` must
then belong to that batch. Tokens use Django's signing with a salt of their own,
support key rotation (``EXOTEL_SMS['SIGNING_KEYS']``, newest first, or ``SECRET_KEY``
with ``SECRET_KEY_FALLBACKS``) and expire after ``CALLBACK_TOKEN_MAX_AGE`` seconds.

A token binds the row's primary key *and* its creation time (``created_at``, to the
microsecond): after ``flush``, a TRUNCATE or a restore that rewinds sequences, a new row
with the same pk is not the row the token was issued for. Tokens issued before that
(pk only, "legacy") are still read until ``ACCEPT_LEGACY_CALLBACK_TOKENS`` is turned
off; they name a row only if it was created before the token was signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings as django_settings
from django.core import signing
from django.views.decorators.debug import sensitive_variables

from .conf import get_settings

STATUS_SALT = "django_exotel_sms.status-callback"
CLICK_SALT = "django_exotel_sms.click-callback"
MESSAGE = "m"
BATCH = "b"
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
_B62 = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
# Hosts' clocks differ: a legacy token names rows created up to this long after its signing.
LEGACY_CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class CallbackScope:
    kind: str  # MESSAGE or BATCH
    pk: int
    # The row's creation time as signed (microseconds since the epoch); None in a legacy token.
    created: int | None = None
    # When a legacy token was signed; only used when ``created`` is None.
    issued_at: datetime | None = None

    def stamped_at(self) -> datetime | None:
        """The signed creation time as an aware datetime (None in a legacy token)."""
        return None if self.created is None else _EPOCH + timedelta(microseconds=self.created)

    def names(self, created_at: datetime) -> bool:
        """Whether the row with this pk, created at ``created_at``, is the one the token names."""
        if self.created is not None:
            return created_stamp(created_at) == self.created
        # A row created after the token was signed cannot be the row it was issued for.
        return self.issued_at is None or _aware(created_at) <= self.issued_at + LEGACY_CLOCK_SKEW


def _aware(value: datetime) -> datetime:
    # USE_TZ=False stores naive datetimes: read them as UTC, the same way on both sides.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt_timezone.utc)


def created_stamp(created_at: datetime) -> int:
    return (_aware(created_at) - _EPOCH) // timedelta(microseconds=1)


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


def make_token(kind: str, pk: int, created_at: datetime, *, salt: str = STATUS_SALT) -> str:
    """A token for the message or batch ``pk`` created at ``created_at`` (its stored value)."""
    if kind not in (MESSAGE, BATCH):
        raise ValueError(f"kind must be {MESSAGE!r} or {BATCH!r}")
    return _signer(salt).sign(f"{kind}{int(pk)}.{signing.b62_encode(created_stamp(created_at))}")


def _number(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise signing.BadSignature("malformed callback token")
    return int(text)


def read_token(token: str, *, salt: str = STATUS_SALT) -> CallbackScope:
    """The scope a token grants; raises ``signing.BadSignature`` (or SignatureExpired)."""
    s = get_settings()
    value = _signer(salt).unsign(token, max_age=s.callback_token_max_age)
    kind, rest = value[:1], value[1:]
    if kind not in (MESSAGE, BATCH):
        raise signing.BadSignature("malformed callback token")
    digits, dot, stamp = rest.partition(".")
    if dot:
        if not stamp or not set(stamp.lstrip("-")) <= _B62:
            raise signing.BadSignature("malformed callback token")
        return CallbackScope(kind, _number(digits), created=signing.b62_decode(stamp))
    if not s.accept_legacy_callback_tokens:
        raise signing.BadSignature("pk-only callback tokens are no longer accepted")
    # The signature is verified: "value:timestamp:signature", the timestamp in base 62.
    issued = int(signing.b62_decode(token.rsplit(":", 2)[-2]))
    return CallbackScope(
        kind, _number(digits), issued_at=datetime.fromtimestamp(issued, tz=dt_timezone.utc)
    )


def _url(path: str) -> str | None:
    s = get_settings()
    if not s.status_callbacks or not s.callback_base_url:
        return None
    return f"{s.callback_base_url.rstrip('/')}/{path}"


def status_callback_url(kind: str, pk: int, created_at: datetime) -> str | None:
    """Absolute StatusCallback URL for a message or batch, or None when callbacks are off."""
    return _url(f"status/{make_token(kind, pk, created_at)}/")


def click_callback_url(kind: str, pk: int, created_at: datetime) -> str | None:
    return _url(f"click/{make_token(kind, pk, created_at, salt=CLICK_SALT)}/")
