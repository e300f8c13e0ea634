"""Settings (get_settings, get_account) and the system checks that name the key to fix."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from django_exotel_sms import conf
from django_exotel_sms.checks import check_settings
from django_exotel_sms.conf import AccountConfig, get_account, get_settings

VALID: dict[str, Any] = {
    "ACCOUNT_SID": "acme",
    "API_KEY": "key-123",
    "API_TOKEN": "token-456",
    "CALLBACK_BASE_URL": "https://sms.example.com/exotel/",
}
PROMO = {"ACCOUNT_SID": "promo-sid", "API_KEY": "promo-key", "API_TOKEN": "promo-token"}


DROP = object()  # configure(KEY=DROP) leaves KEY out


@pytest.fixture
def configure(settings: Any) -> Any:
    """Replace EXOTEL_SMS with VALID plus the given keys."""

    def set_(**changes: Any) -> None:
        value = {**VALID, **changes}
        settings.EXOTEL_SMS = {k: v for k, v in value.items() if v is not DROP}

    return set_


def checked() -> list[tuple[str, str]]:
    return [(m.id, m.msg) for m in check_settings()]


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


# -- get_settings ---------------------------------------------------------------------------


def test_defaults(settings: Any) -> None:
    settings.EXOTEL_SMS = {}
    s = get_settings()
    assert s.backend == "django_exotel_sms.backends.exotel.ExotelBackend"
    assert (s.default_region, s.dlt_max_var_length, s.require_dlt_for_india) == ("IN", 30, True)
    assert (s.chunk_size, s.batch_parallelism, s.max_attempts) == (100, 2, 8)
    assert (s.retry_backoff, s.retry_backoff_max) == (2.0, 300.0)
    assert (s.delivery, s.at_least_once) == ("at-most-once", False)
    assert (s.claim_timeout, s.reconcile_after, s.reconcile_batch_size) == (300.0, 900.0, 200)
    assert (s.callback_base_url, s.status_callbacks) == (None, True)
    assert (s.callback_token_max_age, s.idempotency_key_ttl) == (7 * 24 * 3600, 24 * 3600)
    assert (s.signing_keys, s.api_permission_classes, s.api_max_bulk) == (None, None, 10_000)
    assert (s.rate_limit_storage, s.task_queue) == (None, None)
    assert s.accounts == {"default": {key: conf.DEFAULTS[key] for key in conf.ACCOUNT_KEYS}}
    assert s.accounts["default"]["SUBDOMAIN"] == "api.exotel.com"
    assert s.accounts["default"]["RATE_LIMIT"] == "200/minute"


def test_settings_follow_overrides(settings: Any) -> None:
    settings.EXOTEL_SMS = {"DELIVERY": "at-least-once", "CHUNK_SIZE": 50, "DEFAULT_REGION": None}
    s = get_settings()
    assert (s.at_least_once, s.chunk_size, s.default_region) == (True, 50, None)
    settings.EXOTEL_SMS = {"CHUNK_SIZE": 500}
    assert get_settings().chunk_size == 100  # Exotel's per-request limit
    settings.EXOTEL_SMS = {"CHUNK_SIZE": 0}
    assert get_settings().chunk_size == 1  # never 0, which would stall every batch


def test_missing_exotel_sms_means_defaults(settings: Any) -> None:
    del settings.EXOTEL_SMS
    assert get_settings().backend == conf.DEFAULTS["BACKEND"]
    with pytest.raises(ImproperlyConfigured, match=r"^EXOTEL_SMS\['ACCOUNT_SID'\] is not set\.$"):
        get_account()


def test_exotel_sms_must_be_a_dict(settings: Any) -> None:
    settings.EXOTEL_SMS = ["ACCOUNT_SID"]
    with pytest.raises(ImproperlyConfigured, match=r"^settings\.EXOTEL_SMS must be a dict\.$"):
        get_settings()


def test_default_account(configure: Any) -> None:
    configure(SUBDOMAIN="api.in.exotel.com", DEFAULT_SENDER="ACMEIN", CONNECT_TIMEOUT=2)
    account = get_account()
    assert account == get_account("default")
    assert (account.alias, account.account_sid, account.api_key, account.api_token) == (
        "default",
        "acme",
        "key-123",
        "token-456",
    )
    assert (account.subdomain, account.base_url, account.default_sender) == (
        "api.in.exotel.com",
        None,
        "ACMEIN",
    )
    assert (account.connect_timeout, account.read_timeout) == (2.0, 30.0)
    assert (account.rate_limit, account.get_rate_limit) == ("200/minute", "200/minute")


def test_named_accounts_do_not_inherit_credentials(configure: Any) -> None:
    configure(
        DEFAULT_SENDER="ACMEIN",
        DLT_ENTITY_ID="1101000000000000001",
        SUBDOMAIN="api.in.exotel.com",
        ACCOUNTS={"promo": {"ACCOUNT_SID": "promo-sid"}},
    )
    data = get_settings().accounts["promo"]
    assert data["ACCOUNT_SID"] == "promo-sid"
    assert "API_KEY" not in data and "API_TOKEN" not in data
    # Non-secret settings are inherited.
    assert (data["DEFAULT_SENDER"], data["SUBDOMAIN"]) == ("ACMEIN", "api.in.exotel.com")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_account("promo")
    assert str(excinfo.value) == "EXOTEL_SMS['ACCOUNTS']['promo']['API_KEY'] is not set."
    assert "key-123" not in str(excinfo.value)


def test_named_account_error_names_the_exact_key(configure: Any) -> None:
    configure(ACCOUNTS={"promo": {"ACCOUNT_SID": "promo-sid", "API_KEY": "promo-key"}})
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_account("promo")
    assert str(excinfo.value) == "EXOTEL_SMS['ACCOUNTS']['promo']['API_TOKEN'] is not set."


def test_named_account_with_its_own_credentials(configure: Any) -> None:
    configure(DEFAULT_SENDER="ACMEIN", ACCOUNTS={"promo": {**PROMO, "DEFAULT_SENDER": "123456"}})
    promo = get_account("promo")
    assert (promo.alias, promo.account_sid, promo.api_key, promo.api_token) == (
        "promo",
        "promo-sid",
        "promo-key",
        "promo-token",
    )
    assert promo.default_sender == "123456"
    assert get_account().api_key == "key-123"
    assert conf.account_aliases() == ["default", "promo"]


@pytest.mark.parametrize("key", ["ACCOUNT_SID", "API_KEY", "API_TOKEN"])
def test_default_account_error_names_the_key(configure: Any, key: str) -> None:
    configure(**{key: DROP})
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_account()
    assert str(excinfo.value) == f"EXOTEL_SMS['{key}'] is not set."


def test_unknown_account(configure: Any) -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        get_account("nope")
    assert str(excinfo.value) == "Unknown Exotel account 'nope': add it to EXOTEL_SMS['ACCOUNTS']."


def test_account_repr_hides_the_key_and_token(configure: Any) -> None:
    configure(ACCOUNTS={"promo": PROMO})
    for account in (get_account(), get_account("promo")):
        for text in (repr(account), str(account)):
            assert account.account_sid in text
            assert account.api_key not in text and account.api_token not in text
    plain = AccountConfig("x", "sid", api_key="K-secret", api_token="T-secret")
    assert "secret" not in repr(plain)


def test_settings_repr_hides_accounts_and_signing_keys(configure: Any) -> None:
    configure(SIGNING_KEYS=["signing-secret"], ACCOUNTS={"promo": PROMO})
    text = repr(get_settings())
    for secret in ("key-123", "token-456", "promo-key", "promo-token", "signing-secret"):
        assert secret not in text


# -- system checks --------------------------------------------------------------------------


def test_valid_settings_pass(configure: Any) -> None:
    configure(ACCOUNTS={"promo": PROMO})
    assert check_settings() == []


def test_test_settings_pass() -> None:
    assert check_settings() == []


def test_manage_py_check_passes() -> None:
    out = StringIO()
    call_command("check", stdout=out)
    assert "System check identified no issues" in out.getvalue()


def test_check_is_registered(configure: Any) -> None:
    from django.core.checks import run_checks

    configure(CHUNK_SIZE=0)
    assert "django_exotel_sms.E024" in ids(run_checks())


def test_missing_exotel_sms(settings: Any) -> None:
    del settings.EXOTEL_SMS
    (message,) = check_settings()
    assert isinstance(message, Error)
    assert (message.id, message.msg) == (
        "django_exotel_sms.E001",
        "settings.EXOTEL_SMS is not set.",
    )
    # Balanced braces: the hint is copied into settings as it reads.
    assert message.hint == (
        "Add EXOTEL_SMS = {'ACCOUNT_SID': ..., 'API_KEY': ..., 'API_TOKEN': ...} to your settings."
    )


def test_exotel_sms_not_a_dict(settings: Any) -> None:
    settings.EXOTEL_SMS = "acme"
    assert checked() == [("django_exotel_sms.E002", "settings.EXOTEL_SMS must be a dict.")]


@pytest.mark.parametrize("key", ["ACCOUNT_SID", "API_KEY", "API_TOKEN"])
@pytest.mark.parametrize("value", [DROP, None, ""])
def test_missing_credential(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    assert checked() == [("django_exotel_sms.E010", f"EXOTEL_SMS['{key}'] is not set.")]


@pytest.mark.parametrize("value", ["key 123", " ", 123])
def test_malformed_credential(configure: Any, value: Any) -> None:
    configure(API_KEY=value)
    assert checked() == [
        ("django_exotel_sms.E011", "EXOTEL_SMS['API_KEY'] must be a string without spaces.")
    ]


def test_named_account_missing_credentials(configure: Any) -> None:
    configure(ACCOUNTS={"promo": {"ACCOUNT_SID": "promo-sid"}})
    assert checked() == [
        ("django_exotel_sms.E010", "EXOTEL_SMS['ACCOUNTS']['promo']['API_KEY'] is not set."),
        ("django_exotel_sms.E010", "EXOTEL_SMS['ACCOUNTS']['promo']['API_TOKEN'] is not set."),
    ]


@pytest.mark.parametrize("value", ["api.exotel.in", "https://api.exotel.com", ["api.exotel.com"]])
def test_bad_subdomain(configure: Any, value: Any) -> None:
    configure(SUBDOMAIN=value)
    (message,) = check_settings()
    assert (message.id, message.msg) == (
        "django_exotel_sms.E012",
        f"EXOTEL_SMS['SUBDOMAIN'] is {value!r}.",
    )
    assert "api.in.exotel.com" in message.hint


@pytest.mark.parametrize("value", ["api.exotel.com", "api.in.exotel.com"])
def test_good_subdomains(configure: Any, value: str) -> None:
    configure(SUBDOMAIN=value)
    assert check_settings() == []


def test_bad_subdomain_in_a_named_account(configure: Any) -> None:
    configure(ACCOUNTS={"promo": {**PROMO, "SUBDOMAIN": "mumbai"}})
    assert ids(check_settings()) == ["django_exotel_sms.E012"]
    assert check_settings()[0].msg == "EXOTEL_SMS['ACCOUNTS']['promo']['SUBDOMAIN'] is 'mumbai'."


def test_top_level_problem_is_reported_once_under_its_own_key(configure: Any) -> None:
    configure(SUBDOMAIN="mumbai", READ_TIMEOUT=0, ACCOUNTS={"promo": PROMO})
    assert checked() == [
        ("django_exotel_sms.E012", "EXOTEL_SMS['SUBDOMAIN'] is 'mumbai'."),
        (
            "django_exotel_sms.E014",
            "EXOTEL_SMS['READ_TIMEOUT'] must be a positive number of seconds.",
        ),
    ]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "http://key:token@127.0.0.1:8765",
            "must not contain credentials; set API_KEY and API_TOKEN instead",
        ),
        (
            "https://key@api.exotel.com",
            "must not contain credentials; set API_KEY and API_TOKEN instead",
        ),
        ("127.0.0.1:8765", "must be an absolute http(s) URL such as 'https://example.com'"),
        ("/exotel", "must be an absolute http(s) URL such as 'https://example.com'"),
        (
            "ftp://files.example.com",
            "must be an absolute http(s) URL such as 'https://example.com'",
        ),
        (8765, "must be a string URL"),
    ],
)
def test_bad_base_url(configure: Any, value: Any, problem: str) -> None:
    configure(BASE_URL=value)
    assert checked() == [("django_exotel_sms.E013", f"EXOTEL_SMS['BASE_URL'] {problem}.")]


def test_credentials_never_echoed_by_the_base_url_check(configure: Any) -> None:
    configure(BASE_URL="http://key:s3cr3t@127.0.0.1:8765")
    (message,) = check_settings()
    assert "s3cr3t" not in message.msg + (message.hint or "")


def test_base_url_for_a_local_stand_in_is_fine(configure: Any) -> None:
    configure(BASE_URL="http://127.0.0.1:8765")
    assert check_settings() == []


@pytest.mark.parametrize("key", ["CONNECT_TIMEOUT", "READ_TIMEOUT"])
@pytest.mark.parametrize("value", [0, -1, "5", True])
def test_bad_timeouts(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    assert checked() == [
        ("django_exotel_sms.E014", f"EXOTEL_SMS['{key}'] must be a positive number of seconds.")
    ]


def test_bad_timeout_in_a_named_account(configure: Any) -> None:
    configure(ACCOUNTS={"promo": {**PROMO, "READ_TIMEOUT": -2}})
    assert checked() == [
        (
            "django_exotel_sms.E014",
            "EXOTEL_SMS['ACCOUNTS']['promo']['READ_TIMEOUT'] must be a positive number of seconds.",
        )
    ]


@pytest.mark.parametrize("key", ["RATE_LIMIT", "GET_RATE_LIMIT"])
@pytest.mark.parametrize("value", ["fast", "200 per fortnight", 200, ["200/minute"]])
def test_bad_rate_limit(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    (message,) = check_settings()
    assert (message.id, message.msg) == (
        "django_exotel_sms.E015",
        f"EXOTEL_SMS['{key}'] is {value!r}.",
    )
    assert "200/minute" in message.hint


@pytest.mark.parametrize("value", ["3/second", "200 per minute", "10000/hour"])
def test_good_rate_limits(configure: Any, value: str) -> None:
    configure(RATE_LIMIT=value)
    assert check_settings() == []


def test_unknown_key_is_a_warning(configure: Any) -> None:
    configure(DEFAULT_SENDR="ACMEIN")
    (message,) = check_settings()
    assert isinstance(message, Warning)
    assert (message.id, message.msg) == (
        "django_exotel_sms.W001",
        "EXOTEL_SMS['DEFAULT_SENDR'] is not a setting of django-exotel-sms.",
    )


def test_unknown_account_key_is_a_warning(configure: Any) -> None:
    configure(ACCOUNTS={"promo": {**PROMO, "CHUNK_SIZE": 50}})
    (message,) = check_settings()
    assert isinstance(message, Warning)
    assert (message.id, message.msg) == (
        "django_exotel_sms.W001",
        "EXOTEL_SMS['ACCOUNTS']['promo']['CHUNK_SIZE'] is not an account setting.",
    )


@pytest.mark.parametrize("value", [["promo"], "promo"])
def test_accounts_must_be_a_dict(configure: Any, value: Any) -> None:
    configure(ACCOUNTS=value)
    assert checked() == [("django_exotel_sms.E003", "EXOTEL_SMS['ACCOUNTS'] must be a dict.")]


def test_each_account_must_be_a_dict(configure: Any) -> None:
    configure(ACCOUNTS={"promo": "promo-sid"})
    assert checked() == [
        ("django_exotel_sms.E003", "EXOTEL_SMS['ACCOUNTS']['promo'] must be a dict.")
    ]


@pytest.mark.parametrize("value", [DROP, None, ""])
def test_callback_base_url_missing_is_a_warning(configure: Any, value: Any) -> None:
    configure(CALLBACK_BASE_URL=value)
    (message,) = check_settings()
    assert isinstance(message, Warning)
    assert message.id == "django_exotel_sms.W010"
    assert message.msg.startswith("EXOTEL_SMS['CALLBACK_BASE_URL'] is not set")
    assert "EXOTEL_SMS['STATUS_CALLBACKS'] = False" in message.hint


def test_callback_base_url_not_needed_without_status_callbacks(configure: Any) -> None:
    configure(CALLBACK_BASE_URL=DROP, STATUS_CALLBACKS=False)
    assert check_settings() == []


def test_bad_callback_base_url(configure: Any) -> None:
    configure(CALLBACK_BASE_URL="sms.example.com/exotel/")
    assert checked() == [
        (
            "django_exotel_sms.E021",
            "EXOTEL_SMS['CALLBACK_BASE_URL'] must be an absolute http(s) URL such as "
            "'https://example.com'.",
        )
    ]


@pytest.mark.parametrize("value", ["exactly-once", "at_least_once", None])
def test_bad_delivery(configure: Any, value: Any) -> None:
    configure(DELIVERY=value)
    (message,) = check_settings()
    assert (message.id, message.msg) == (
        "django_exotel_sms.E020",
        f"EXOTEL_SMS['DELIVERY'] is {value!r}.",
    )


@pytest.mark.parametrize(
    "value",
    [
        "django_exotel_sms.backends.nope.NopeBackend",
        "django_exotel_sms.backends.locmem.NoSuchBackend",
        "LocmemBackend",
        None,
    ],
)
def test_bad_backend(configure: Any, value: Any) -> None:
    configure(BACKEND=value)
    (message,) = check_settings()
    assert (message.id, message.msg) == (
        "django_exotel_sms.E022",
        f"EXOTEL_SMS['BACKEND'] is {value!r}, which cannot be imported.",
    )


@pytest.mark.parametrize(
    "value",
    [
        "django_exotel_sms.backends.exotel.ExotelBackend",
        "django_exotel_sms.backends.locmem.LocmemBackend",
        "django_exotel_sms.backends.console.ConsoleBackend",
    ],
)
def test_good_backends(configure: Any, value: str) -> None:
    configure(BACKEND=value)
    assert check_settings() == []


@pytest.mark.parametrize("value", ["XX", "IND", "India", 91])
def test_bad_default_region(configure: Any, value: Any) -> None:
    configure(DEFAULT_REGION=value)
    (message,) = check_settings()
    assert (message.id, message.msg) == (
        "django_exotel_sms.E023",
        f"EXOTEL_SMS['DEFAULT_REGION'] is {value!r}, not a known region code.",
    )


@pytest.mark.parametrize("value", ["IN", "SG", "in", None])
def test_good_default_regions(configure: Any, value: Any) -> None:
    configure(DEFAULT_REGION=value)
    assert check_settings() == []


@pytest.mark.parametrize("value", [0, 101, -5, "100", 50.0, True])
def test_bad_chunk_size(configure: Any, value: Any) -> None:
    configure(CHUNK_SIZE=value)
    assert checked() == [
        (
            "django_exotel_sms.E024",
            "EXOTEL_SMS['CHUNK_SIZE'] must be an integer from 1 to 100 (Exotel's limit per "
            "request).",
        )
    ]


@pytest.mark.parametrize("value", [1, 100])
def test_chunk_size_limits(configure: Any, value: int) -> None:
    configure(CHUNK_SIZE=value)
    assert check_settings() == []


@pytest.mark.parametrize(
    "key", ["MAX_ATTEMPTS", "DLT_MAX_VAR_LENGTH", "BATCH_PARALLELISM", "API_MAX_BULK"]
)
@pytest.mark.parametrize("value", [0, -1, "3", True])
def test_bad_positive_integers(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    assert checked() == [
        ("django_exotel_sms.E025", f"EXOTEL_SMS['{key}'] must be a positive integer.")
    ]


@pytest.mark.parametrize("value", [[], "one-key", ["ok", 5]])
def test_bad_signing_keys(configure: Any, value: Any) -> None:
    configure(SIGNING_KEYS=value)
    assert checked() == [
        (
            "django_exotel_sms.E026",
            "EXOTEL_SMS['SIGNING_KEYS'] must be a non-empty list of strings (newest first).",
        )
    ]


def test_every_problem_is_reported_together(configure: Any) -> None:
    configure(API_TOKEN=DROP, SUBDOMAIN="mumbai", CHUNK_SIZE=101, DELIVERY="twice", TYPO=1)
    assert ids(check_settings()) == [
        "django_exotel_sms.W001",
        "django_exotel_sms.E010",
        "django_exotel_sms.E012",
        "django_exotel_sms.E020",
        "django_exotel_sms.E024",
    ]
