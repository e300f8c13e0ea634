"""One ``EXOTEL_SMS`` settings dict, read into typed settings objects.

Everything the app reads from Django settings goes through :func:`get_settings` and
:func:`get_account`, so defaults live in one place and the system checks in
``checks.py`` can name the exact key to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.views.decorators.debug import sensitive_variables

SETTINGS_NAME = "EXOTEL_SMS"
DEFAULT_ACCOUNT = "default"
SUBDOMAINS = {
    "api.exotel.com": "Singapore",
    "api.in.exotel.com": "Mumbai",
}
DELIVERY_MODES = ("at-most-once", "at-least-once")

# Keys an account may carry, at the top level (the "default" account) or under ACCOUNTS.
ACCOUNT_KEYS = (
    "ACCOUNT_SID",
    "API_KEY",
    "API_TOKEN",
    "SUBDOMAIN",
    "BASE_URL",
    "DEFAULT_SENDER",
    "DLT_ENTITY_ID",
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "RATE_LIMIT",
    "GET_RATE_LIMIT",
)

DEFAULTS: dict[str, Any] = {
    "ACCOUNT_SID": None,
    "API_KEY": None,
    "API_TOKEN": None,
    "SUBDOMAIN": "api.exotel.com",
    "BASE_URL": None,
    "DEFAULT_SENDER": None,
    "DLT_ENTITY_ID": None,
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 30.0,
    # Exotel documents about 200 requests a minute; shared by every worker of an account.
    "RATE_LIMIT": "200/minute",
    "GET_RATE_LIMIT": "200/minute",
    "RATE_LIMIT_STORAGE": None,  # e.g. "redis://127.0.0.1:6379/1"; None = per-process memory
    "ACCOUNTS": {},
    "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
    "DEFAULT_REGION": "IN",
    "DLT_MAX_VAR_LENGTH": 30,
    "REQUIRE_DLT_FOR_INDIA": True,
    "CHUNK_SIZE": 100,
    "BATCH_PARALLELISM": 2,
    "MAX_ATTEMPTS": 8,
    "RETRY_BACKOFF": 2.0,
    "RETRY_BACKOFF_MAX": 300.0,
    "DELIVERY": "at-most-once",
    "CLAIM_TIMEOUT": 300.0,
    # The longest a send waits for a rate-limit slot; part of the longest live claim.
    "RATE_LIMIT_MAX_WAIT": 60.0,
    "RECONCILE_AFTER": 900.0,
    "RECONCILE_BATCH_SIZE": 200,
    "RECONCILE_MAX_AGE": 7 * 24 * 3600.0,
    "CALLBACK_BASE_URL": None,
    "STATUS_CALLBACKS": True,
    "CALLBACK_TOKEN_MAX_AGE": 7 * 24 * 3600,
    # Tokens naming only a pk (before 0.1.0's row binding); off once they have all expired.
    "ACCEPT_LEGACY_CALLBACK_TOKENS": True,
    "SIGNING_KEYS": None,
    "IDEMPOTENCY_KEY_TTL": 24 * 3600,
    "API_PERMISSION_CLASSES": None,
    # Recipients per REST bulk request; bigger imports go through send_bulk() or exotel_send.
    "API_MAX_BULK": 10_000,
    "TASK_QUEUE": None,
    # Hours of the day per SMS type and region (scheduling.py); [] sends at any hour.
    "SENDING_WINDOWS": [
        {
            "sms_types": ["promotional"],
            "regions": ["IN"],
            "start": "10:00",
            "end": "21:00",
            "timezone": "Asia/Kolkata",
        }
    ],
    "VALID_FOR": {},  # SMS type -> seconds a message may wait before it expires
    "RELEASE_INTERVAL": 5.0,  # seconds between release_due beat runs: scheduled sends' delay
    # Consent and safety (suppression.py). Exotel code -> (reason, scope, failures needed).
    "SUPPRESSION_CODES": {
        23005: ("dnd", "promotional", 1),
        23020: ("blacklist", "all", 1),
        23084: ("consent", "all", 1),
        23010: ("invalid_number", "all", 2),
        23040: ("invalid_number", "all", 2),
    },
    # Per-recipient limits by "template:<name>" or SMS type, e.g. {"template:otp": "5/hour"}.
    "RECIPIENT_LIMITS": {},
    # Staging safety: only these numbers / prefixes ("+9198*") are sent to; None = everyone.
    "ALLOWED_RECIPIENTS": None,
    "HEALTH_TOKEN": None,  # bearer token of the health and metrics views (docs/reports.rst)
    # Language variants to try after a language's own, e.g. {"hi-IN": ["hi", "en"]}; a
    # language not listed tries its primary subtag ("hi-IN" -> "hi"). Then the template.
    "TEMPLATE_LANGUAGE_FALLBACK": {},
}


@dataclass(frozen=True)
class AccountConfig:
    """One Exotel account. Secrets are kept out of ``repr`` so they never reach a log."""

    alias: str
    account_sid: str
    api_key: str = field(repr=False)
    api_token: str = field(repr=False)
    subdomain: str = "api.exotel.com"
    base_url: str | None = None
    default_sender: str | None = None
    dlt_entity_id: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    rate_limit: str = "200/minute"
    get_rate_limit: str = "200/minute"


@dataclass(frozen=True)
class ExotelSmsSettings:
    accounts: dict[str, dict[str, Any]] = field(repr=False)
    backend: str
    default_region: str | None
    dlt_max_var_length: int
    require_dlt_for_india: bool
    chunk_size: int
    batch_parallelism: int
    max_attempts: int
    retry_backoff: float
    retry_backoff_max: float
    delivery: str
    claim_timeout: float
    rate_limit_max_wait: float
    reconcile_after: float
    reconcile_batch_size: int
    reconcile_max_age: float
    callback_base_url: str | None
    status_callbacks: bool
    callback_token_max_age: int
    accept_legacy_callback_tokens: bool
    signing_keys: list[str] | None = field(repr=False)
    idempotency_key_ttl: int
    api_permission_classes: list[str] | None
    api_max_bulk: int
    rate_limit_storage: str | None
    task_queue: str | None
    sending_windows: Any = None
    valid_for: Any = None
    release_interval: float = 5.0
    suppression_codes: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    recipient_limits: dict[str, str] = field(default_factory=dict)
    allowed_recipients: tuple[str, ...] | None = None
    health_token: str | None = field(default=None, repr=False)
    template_language_fallback: dict[str, list[str]] = field(default_factory=dict)

    @property
    def at_least_once(self) -> bool:
        return self.delivery == "at-least-once"


# Every function below that holds the settings dict (which carries API_TOKEN and
# SIGNING_KEYS) hides its locals from Django's DEBUG error page: a settings mistake
# raises right here, and that page would otherwise print the credentials next to it.


@sensitive_variables("value")
def raw_settings() -> dict[str, Any]:
    value = getattr(django_settings, SETTINGS_NAME, None) or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"settings.{SETTINGS_NAME} must be a dict.")
    return value


@sensitive_variables("merged")
def _merged() -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update(raw_settings())
    return merged


@lru_cache(maxsize=1)
@sensitive_variables("s", "accounts", "base", "overrides")
def get_settings() -> ExotelSmsSettings:
    s = _merged()
    accounts: dict[str, dict[str, Any]] = {
        DEFAULT_ACCOUNT: {key: s[key] for key in ACCOUNT_KEYS},
    }
    for alias, overrides in (s["ACCOUNTS"] or {}).items():
        base = dict(accounts[DEFAULT_ACCOUNT]) if alias != DEFAULT_ACCOUNT else {}
        # Named accounts inherit non-secret defaults, never another account's credentials.
        for secret in ("ACCOUNT_SID", "API_KEY", "API_TOKEN"):
            base.pop(secret, None)
        base.update(overrides or {})
        accounts[str(alias)] = base
    return ExotelSmsSettings(
        accounts=accounts,
        backend=s["BACKEND"],
        default_region=s["DEFAULT_REGION"],
        dlt_max_var_length=int(s["DLT_MAX_VAR_LENGTH"]),
        require_dlt_for_india=bool(s["REQUIRE_DLT_FOR_INDIA"]),
        # 0 would claim nothing and stall every batch; checks report it (E024).
        chunk_size=max(1, min(int(s["CHUNK_SIZE"]), 100)),
        batch_parallelism=max(1, int(s["BATCH_PARALLELISM"])),
        max_attempts=int(s["MAX_ATTEMPTS"]),
        retry_backoff=float(s["RETRY_BACKOFF"]),
        retry_backoff_max=float(s["RETRY_BACKOFF_MAX"]),
        delivery=s["DELIVERY"],
        claim_timeout=float(s["CLAIM_TIMEOUT"]),
        rate_limit_max_wait=float(s["RATE_LIMIT_MAX_WAIT"]),
        reconcile_after=float(s["RECONCILE_AFTER"]),
        reconcile_batch_size=int(s["RECONCILE_BATCH_SIZE"]),
        reconcile_max_age=float(s["RECONCILE_MAX_AGE"]),
        callback_base_url=s["CALLBACK_BASE_URL"],
        status_callbacks=bool(s["STATUS_CALLBACKS"]),
        callback_token_max_age=int(s["CALLBACK_TOKEN_MAX_AGE"]),
        accept_legacy_callback_tokens=bool(s["ACCEPT_LEGACY_CALLBACK_TOKENS"]),
        signing_keys=s["SIGNING_KEYS"],
        idempotency_key_ttl=int(s["IDEMPOTENCY_KEY_TTL"]),
        api_permission_classes=s["API_PERMISSION_CLASSES"],
        api_max_bulk=int(s["API_MAX_BULK"]),
        rate_limit_storage=s["RATE_LIMIT_STORAGE"],
        task_queue=s["TASK_QUEUE"],
        sending_windows=s["SENDING_WINDOWS"],
        valid_for=s["VALID_FOR"],
        release_interval=float(s["RELEASE_INTERVAL"]),
        suppression_codes=_suppression_codes(s["SUPPRESSION_CODES"]),
        recipient_limits=dict(s["RECIPIENT_LIMITS"] or {}),
        allowed_recipients=(
            None if s["ALLOWED_RECIPIENTS"] is None else tuple(s["ALLOWED_RECIPIENTS"])
        ),
        health_token=s["HEALTH_TOKEN"],
        template_language_fallback={
            str(k): [str(x) for x in v] for k, v in (s["TEMPLATE_LANGUAGE_FALLBACK"] or {}).items()
        },
    )


def _suppression_codes(value: Any) -> dict[int, tuple[str, str, int]]:
    """``{code: (reason, scope[, threshold])}`` with int codes; checks report bad entries (E040)."""
    codes: dict[int, tuple[str, str, int]] = {}
    for code, rule in (value or {}).items():
        try:
            reason, scope, *rest = rule
            codes[int(code)] = (str(reason), str(scope), max(1, int(rest[0]) if rest else 1))
        except (TypeError, ValueError, IndexError):
            continue
    return codes


def account_aliases() -> list[str]:
    return list(get_settings().accounts)


@sensitive_variables("accounts", "data")
def get_account(alias: str | None = None) -> AccountConfig:
    """The named account's configuration; raises ImproperlyConfigured naming the missing key."""
    alias = alias or DEFAULT_ACCOUNT
    accounts = get_settings().accounts
    if alias not in accounts:
        raise ImproperlyConfigured(
            f"Unknown Exotel account {alias!r}: add it to {SETTINGS_NAME}['ACCOUNTS']."
        )
    data = accounts[alias]
    for key in ("ACCOUNT_SID", "API_KEY", "API_TOKEN"):
        if not data.get(key):
            raise ImproperlyConfigured(f"{account_key_path(alias, key)} is not set.")
    return AccountConfig(
        alias=alias,
        account_sid=str(data["ACCOUNT_SID"]),
        api_key=str(data["API_KEY"]),
        api_token=str(data["API_TOKEN"]),
        subdomain=data.get("SUBDOMAIN") or DEFAULTS["SUBDOMAIN"],
        base_url=data.get("BASE_URL"),
        default_sender=data.get("DEFAULT_SENDER"),
        dlt_entity_id=data.get("DLT_ENTITY_ID"),
        connect_timeout=float(data.get("CONNECT_TIMEOUT") or DEFAULTS["CONNECT_TIMEOUT"]),
        read_timeout=float(data.get("READ_TIMEOUT") or DEFAULTS["READ_TIMEOUT"]),
        rate_limit=data.get("RATE_LIMIT") or DEFAULTS["RATE_LIMIT"],
        get_rate_limit=data.get("GET_RATE_LIMIT") or DEFAULTS["GET_RATE_LIMIT"],
    )


def account_key_path(alias: str, key: str) -> str:
    """How a user writes this key in settings, for error messages."""
    if alias == DEFAULT_ACCOUNT:
        return f"{SETTINGS_NAME}['{key}']"
    return f"{SETTINGS_NAME}['ACCOUNTS']['{alias}']['{key}']"


@receiver(setting_changed)
def _reset_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        get_settings.cache_clear()
