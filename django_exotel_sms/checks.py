"""System checks: configuration mistakes reported at start-up with the exact key to fix."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from . import conf

_KNOWN_KEYS = set(conf.DEFAULTS)
_ID = "django_exotel_sms"


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string URL"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an absolute http(s) URL such as 'https://example.com'"
    if parts.username or parts.password:
        return "must not contain credentials; set API_KEY and API_TOKEN instead"
    return None


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, conf.SETTINGS_NAME, None)
    if raw is None:
        return [
            Error(
                f"settings.{conf.SETTINGS_NAME} is not set.",
                hint=f"Add {conf.SETTINGS_NAME} = {{'ACCOUNT_SID': ..., 'API_KEY': ..., "
                "'API_TOKEN': ...} to your settings.",
                id=f"{_ID}.E001",
            )
        ]
    if not isinstance(raw, dict):
        return [Error(f"settings.{conf.SETTINGS_NAME} must be a dict.", id=f"{_ID}.E002")]

    messages: list[CheckMessage] = []
    for key in sorted(set(raw) - _KNOWN_KEYS):
        messages.append(
            Warning(
                f"{conf.SETTINGS_NAME}['{key}'] is not a setting of django-exotel-sms.",
                hint="Check the spelling against the configuration reference.",
                id=f"{_ID}.W001",
            )
        )
    merged = {**conf.DEFAULTS, **raw}
    accounts = {conf.DEFAULT_ACCOUNT: {k: merged.get(k) for k in conf.ACCOUNT_KEYS}}
    named = merged.get("ACCOUNTS") or {}
    if not isinstance(named, dict):
        messages.append(
            Error(f"{conf.SETTINGS_NAME}['ACCOUNTS'] must be a dict.", id=f"{_ID}.E003")
        )
        named = {}
    for alias, data in named.items():
        if not isinstance(data, dict):
            messages.append(
                Error(
                    f"{conf.SETTINGS_NAME}['ACCOUNTS']['{alias}'] must be a dict.",
                    id=f"{_ID}.E003",
                )
            )
            continue
        for key in sorted(set(data) - set(conf.ACCOUNT_KEYS)):
            messages.append(
                Warning(
                    f"{conf.account_key_path(alias, key)} is not an account setting.",
                    hint=f"Account settings are: {', '.join(conf.ACCOUNT_KEYS)}.",
                    id=f"{_ID}.W001",
                )
            )
        # Only the account's own keys: inherited ones are reported once, under the key the
        # user actually wrote (credentials are never inherited, so their absence shows here).
        accounts[str(alias)] = dict(data)
    for alias, data in accounts.items():
        messages.extend(_check_account(alias, data))
    messages.extend(_check_general(merged))
    messages.extend(_check_claim_timeout(merged, accounts))
    return messages


def _check_account(alias: str, data: dict[str, Any]) -> list[CheckMessage]:
    out: list[CheckMessage] = []
    for key in ("ACCOUNT_SID", "API_KEY", "API_TOKEN"):
        value = data.get(key)
        if not value:
            out.append(
                Error(
                    f"{conf.account_key_path(alias, key)} is not set.",
                    hint="Copy it from the API settings page of your Exotel dashboard.",
                    id=f"{_ID}.E010",
                )
            )
        elif not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            out.append(
                Error(
                    f"{conf.account_key_path(alias, key)} must be a string without spaces.",
                    id=f"{_ID}.E011",
                )
            )
    subdomain = data.get("SUBDOMAIN")
    if subdomain and (not isinstance(subdomain, str) or subdomain not in conf.SUBDOMAINS):
        out.append(
            Error(
                f"{conf.account_key_path(alias, 'SUBDOMAIN')} is {subdomain!r}.",
                hint="Use 'api.exotel.com' (Singapore) or 'api.in.exotel.com' (Mumbai); "
                "for a local stand-in set BASE_URL instead.",
                id=f"{_ID}.E012",
            )
        )
    if data.get("BASE_URL") is not None:
        problem = _url_problem(data["BASE_URL"])
        if problem:
            out.append(
                Error(f"{conf.account_key_path(alias, 'BASE_URL')} {problem}.", id=f"{_ID}.E013")
            )
    for key in ("CONNECT_TIMEOUT", "READ_TIMEOUT"):
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
        ):
            out.append(
                Error(
                    f"{conf.account_key_path(alias, key)} must be a positive number of seconds.",
                    id=f"{_ID}.E014",
                )
            )
    for key in ("RATE_LIMIT", "GET_RATE_LIMIT"):
        value = data.get(key)
        if value is not None:
            try:
                from limits import parse

                parse(value)
            except (ValueError, TypeError):
                out.append(
                    Error(
                        f"{conf.account_key_path(alias, key)} is {value!r}.",
                        hint="Use a rate such as '200/minute' or '3/second'.",
                        id=f"{_ID}.E015",
                    )
                )
    return out


def _check_general(s: dict[str, Any]) -> list[CheckMessage]:
    out: list[CheckMessage] = []
    name = conf.SETTINGS_NAME
    if s["DELIVERY"] not in conf.DELIVERY_MODES:
        out.append(
            Error(
                f"{name}['DELIVERY'] is {s['DELIVERY']!r}.",
                hint="Use 'at-most-once' (default) or 'at-least-once'.",
                id=f"{_ID}.E020",
            )
        )
    if s["STATUS_CALLBACKS"]:
        if not s["CALLBACK_BASE_URL"]:
            out.append(
                Warning(
                    f"{name}['CALLBACK_BASE_URL'] is not set, so Exotel cannot report "
                    "delivery status.",
                    hint="Set it to the public https URL where django_exotel_sms.urls is "
                    "served (e.g. 'https://example.com/exotel/'), or set "
                    f"{name}['STATUS_CALLBACKS'] = False.",
                    id=f"{_ID}.W010",
                )
            )
        else:
            problem = _url_problem(s["CALLBACK_BASE_URL"])
            if problem:
                out.append(Error(f"{name}['CALLBACK_BASE_URL'] {problem}.", id=f"{_ID}.E021"))
    try:
        import_string(s["BACKEND"])
    except (ImportError, AttributeError, TypeError):  # AttributeError: not a string
        out.append(
            Error(
                f"{name}['BACKEND'] is {s['BACKEND']!r}, which cannot be imported.",
                hint="Use 'django_exotel_sms.backends.exotel.ExotelBackend', "
                "'...locmem.LocmemBackend' or '...console.ConsoleBackend'.",
                id=f"{_ID}.E022",
            )
        )
    region = s["DEFAULT_REGION"]
    if region is not None:
        import phonenumbers

        # phone.normalize upper-cases the region, so 'in' works and must pass here too.
        if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            out.append(
                Error(
                    f"{name}['DEFAULT_REGION'] is {region!r}, not a known region code.",
                    hint="Use a two-letter region code such as 'IN', or None to require "
                    "numbers in +E.164 form.",
                    id=f"{_ID}.E023",
                )
            )
    for key in ("CHUNK_SIZE",):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
            out.append(
                Error(
                    f"{name}['{key}'] must be an integer from 1 to 100 (Exotel's limit per "
                    "request).",
                    id=f"{_ID}.E024",
                )
            )
    for key in ("MAX_ATTEMPTS", "DLT_MAX_VAR_LENGTH", "BATCH_PARALLELISM", "API_MAX_BULK"):
        value = s[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            out.append(Error(f"{name}['{key}'] must be a positive integer.", id=f"{_ID}.E025"))
    keys = s["SIGNING_KEYS"]
    if keys is not None and (
        not isinstance(keys, (list, tuple)) or not keys or not all(isinstance(k, str) for k in keys)
    ):
        out.append(
            Error(
                f"{name}['SIGNING_KEYS'] must be a non-empty list of strings (newest first).",
                id=f"{_ID}.E026",
            )
        )
    return out


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_claim_timeout(
    s: dict[str, Any], accounts: dict[str, dict[str, Any]]
) -> list[CheckMessage]:
    """A live worker's claim must outlast its longest request, or reconcile takes it over."""
    name = conf.SETTINGS_NAME
    claim = _seconds(s["CLAIM_TIMEOUT"])
    wait = _seconds(s["RATE_LIMIT_MAX_WAIT"])
    out: list[CheckMessage] = []
    if claim is None or claim <= 0:
        out.append(
            Error(
                f"{name}['CLAIM_TIMEOUT'] must be a positive number of seconds.", id=f"{_ID}.E031"
            )
        )
    if wait is None or wait < 0:
        out.append(
            Error(
                f"{name}['RATE_LIMIT_MAX_WAIT'] must be a number of seconds (0 or more).",
                id=f"{_ID}.E032",
            )
        )
    if out or claim is None or wait is None:
        return out
    # Named accounts inherit the top-level timeouts they do not set; a bad value is E014's.
    longest: tuple[float, str, float, float] | None = None
    for alias, data in accounts.items():
        connect = _seconds(data.get("CONNECT_TIMEOUT", s["CONNECT_TIMEOUT"]))
        read = _seconds(data.get("READ_TIMEOUT", s["READ_TIMEOUT"]))
        if connect is None or read is None:
            continue
        total = wait + connect + read
        if longest is None or total > longest[0]:
            longest = (total, alias, connect, read)
    if longest is None or claim > longest[0]:
        return out
    total, alias, connect, read = longest
    read_key = conf.account_key_path(alias, "READ_TIMEOUT")
    if alias != conf.DEFAULT_ACCOUNT and "READ_TIMEOUT" not in accounts[alias]:
        read_key = conf.account_key_path(conf.DEFAULT_ACCOUNT, "READ_TIMEOUT")
    out.append(
        Error(
            f"{name}['CLAIM_TIMEOUT'] ({claim:g} s) is not longer than a live worker's longest "
            f"claim: {name}['RATE_LIMIT_MAX_WAIT'] ({wait:g} s) + CONNECT_TIMEOUT ({connect:g} s)"
            f" + {read_key} ({read:g} s) = {total:g} s.",
            hint=f"Raise {name}['CLAIM_TIMEOUT'] above {total:g} s (or lower {read_key} or "
            f"{name}['RATE_LIMIT_MAX_WAIT']). Otherwise reconciliation takes a live worker's "
            "messages for a dead one's.",
            id=f"{_ID}.E030",
        )
    )
    return out


RELEASE_TASK = "django_exotel_sms.tasks.release_due"


@register(Tags.compatibility)
def check_scheduling(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SENDING_WINDOWS, VALID_FOR, RELEASE_INTERVAL and the release_due beat entry."""
    from django.core.exceptions import ImproperlyConfigured

    from . import scheduling

    raw = getattr(settings, conf.SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return []  # check_settings reports it
    s = {**conf.DEFAULTS, **raw}
    name = conf.SETTINGS_NAME
    out: list[CheckMessage] = []
    for key, parse, ident in (
        ("SENDING_WINDOWS", scheduling.parse_windows, "E050"),
        ("VALID_FOR", scheduling.parse_valid_for, "E051"),
    ):
        try:
            parse(s[key])
        except ImproperlyConfigured as exc:
            out.append(Error(str(exc), id=f"{_ID}.{ident}"))
    interval = s["RELEASE_INTERVAL"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        out.append(
            Error(
                f"{name}['RELEASE_INTERVAL'] must be a positive number of seconds.",
                id=f"{_ID}.E052",
            )
        )
    beat = getattr(settings, "CELERY_BEAT_SCHEDULE", None)
    if isinstance(beat, dict) and beat:
        tasks = {entry.get("task") for entry in beat.values() if isinstance(entry, dict)}
        if RELEASE_TASK not in tasks:
            out.append(
                Warning(
                    "CELERY_BEAT_SCHEDULE has no entry for release_due: scheduled and "
                    "window-deferred SMS leave only when reconcile runs.",
                    hint=f"Add {{'task': '{RELEASE_TASK}', 'schedule': "
                    f"{name}['RELEASE_INTERVAL']}} to CELERY_BEAT_SCHEDULE.",
                    id=f"{_ID}.W050",
                )
            )
    return out


@register(Tags.compatibility)
def check_consent_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SUPPRESSION_CODES, RECIPIENT_LIMITS and ALLOWED_RECIPIENTS (see suppression.py)."""
    raw = getattr(settings, conf.SETTINGS_NAME, None)
    if not isinstance(raw, dict):
        return []  # check_settings reports it
    merged = {**conf.DEFAULTS, **raw}
    return [
        *_check_suppression_codes(merged["SUPPRESSION_CODES"]),
        *_check_recipient_limits(merged["RECIPIENT_LIMITS"]),
        *_check_allowed_recipients(merged["ALLOWED_RECIPIENTS"], merged["DEFAULT_REGION"]),
    ]


def _check_suppression_codes(value: Any) -> list[CheckMessage]:
    from .models import Suppression

    key = f"{conf.SETTINGS_NAME}['SUPPRESSION_CODES']"
    if not isinstance(value, dict):
        return [
            Error(
                f"{key} must be a dict of Exotel code -> (reason, scope[, threshold]).",
                id=f"{_ID}.E040",
            )
        ]
    reasons = [r for r, _ in Suppression.REASON_CHOICES]
    scopes = [s for s, _ in Suppression.SCOPE_CHOICES]
    out: list[CheckMessage] = []
    for code, rule in value.items():
        problem = None
        if not str(code).isdigit():
            problem = "its key is not a numeric Exotel code"
        elif not isinstance(rule, (list, tuple)) or len(rule) not in (2, 3):
            problem = "must be (reason, scope) or (reason, scope, threshold)"
        elif rule[0] not in reasons:
            problem = f"reason must be one of {', '.join(reasons)}"
        elif rule[1] not in scopes:
            problem = f"scope must be one of {', '.join(scopes)}"
        elif len(rule) == 3 and not (isinstance(rule[2], int) and rule[2] >= 1):
            problem = "threshold must be a positive integer"
        if problem:
            out.append(Error(f"{key}[{code!r}] {problem}.", id=f"{_ID}.E040"))
    return out


def _check_recipient_limits(value: Any) -> list[CheckMessage]:
    from limits import parse

    key = f"{conf.SETTINGS_NAME}['RECIPIENT_LIMITS']"
    if not isinstance(value, dict):
        return [
            Error(f"{key} must be a dict such as {{'template:otp': '5/hour'}}.", id=f"{_ID}.E041")
        ]
    out: list[CheckMessage] = []
    for name, limit in value.items():
        try:
            parse(str(limit))
        except ValueError:
            out.append(
                Error(
                    f"{key}[{name!r}] is not a rate limit: {limit!r}.",
                    hint="Write it as 'N/second', 'N/minute', 'N/hour' or 'N/day'.",
                    id=f"{_ID}.E041",
                )
            )
    return out


def _check_allowed_recipients(value: Any, region: Any) -> list[CheckMessage]:
    from . import phone

    key = f"{conf.SETTINGS_NAME}['ALLOWED_RECIPIENTS']"
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        return [
            Error(f"{key} must be a list of numbers and prefixes ('+9198*').", id=f"{_ID}.E042")
        ]
    out: list[CheckMessage] = []
    for entry in value:
        text = str(entry).strip()
        if text.endswith("*"):
            if not text.startswith("+") or not text.rstrip("*")[1:].replace(" ", "").isdigit():
                out.append(
                    Error(f"{key}: prefix {entry!r} must look like '+9198*'.", id=f"{_ID}.E042")
                )
            continue
        try:
            phone.normalize(text, region)
        except phone.InvalidNumber as exc:
            out.append(Error(f"{key}: {exc}", id=f"{_ID}.E042"))
    if not settings.DEBUG:
        out.append(
            Warning(
                f"{key} is set while DEBUG is False: only its numbers receive SMS, every "
                "other recipient is saved suppressed (not_allowed).",
                hint="It is meant for staging; remove it in production.",
                id=f"{_ID}.W040",
            )
        )
    return out
