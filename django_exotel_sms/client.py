"""ExotelClient: the HTTP conversation with Exotel's SMS API, and nothing else.

No Django ORM here (``from_settings`` lazily reads ``django_exotel_sms.conf``): the client
turns calls into form-encoded requests, answers into ``SmsResult`` objects, and every
failure into one exception from ``django_exotel_sms.exceptions``.

Credentials travel only in the ``Authorization`` header of a pooled ``requests.Session``;
they never appear in a URL, a log line, an exception or ``repr(client)``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import xml.etree.ElementTree as ET  # DOCTYPE/ENTITY declarations are refused before parsing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import MappingProxyType, TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3.exceptions
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth

from django_exotel_sms import __version__
from django_exotel_sms.exceptions import (
    ExotelAPIError,
    ExotelConnectionError,
    ExotelOutcomeUnknown,
    ExotelReadTimeout,
    ExotelRequestError,
    ExotelResponseError,
    ExotelTransportError,
    error_for_response,
)
from django_exotel_sms.reports import metrics
from django_exotel_sms.status import FAILURE_STATUSES, normalize_exotel_status, parse_code

__all__ = [
    "IST",
    "MAX_RECIPIENTS",
    "BulkResult",
    "ExotelClient",
    "SmsResult",
    "parse_exotel_datetime",
    "parse_retry_after",
    "parse_sms_response",
    "shorten_url_params_form",
]

logger = logging.getLogger(__name__)

# Exotel writes naive 'YYYY-MM-DD HH:mm:ss' timestamps in India time.
IST = timezone(timedelta(hours=5, minutes=30), "IST")
MAX_RECIPIENTS = 100  # per request, static (To[]) and dynamic (Messages[]) bulk alike
MAX_BODY_LENGTH = 2000
DEFAULT_SUBDOMAIN = "api.exotel.com"
DEFAULT_TIMEOUT = (5.0, 30.0)
USER_AGENT = f"django-exotel-sms/{__version__} python-requests/{requests.__version__}"

ENCODING_TYPES = ("plain", "unicode")
SMS_TYPES = ("transactional", "transactional_opt_in", "promotional")
PRIORITIES = ("normal", "high")
SHORTEN_URL_PARAMS = {
    "header": "Header",
    "custom_domain": "CustomDomain",
    "tracking": "Tracking",
    "click_tracking_callback_url": "ClickTrackingCallbackUrl",
    "time_to_expiry": "TimeToExpiry",
}
MAX_TIME_TO_EXPIRY = 365 * 24 * 60  # minutes
_DYNAMIC_MESSAGE_KEYS = ("to", "body", "sender", "sms_type", "dlt_template_id")
_NO_MATCH = "no matching results"
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?$")
_XML_DECLS_RE = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)

Form = list[tuple[str, str]]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SmsResult:
    """One ``SMSMessage`` record as Exotel returned it, typed; everything verbatim in ``raw``."""

    sid: str | None
    to: str | None
    sender: str | None  # Exotel's 'From', e.g. '0XXXXXX4890/WEBDEV'
    status: str | None
    detailed_status_code: int | None
    detailed_status: str | None
    sms_units: int | None
    price: Decimal | None
    date_created: datetime | None
    date_updated: datetime | None
    date_sent: datetime | None
    body: str | None
    direction: str | None
    account_sid: str | None
    uri: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """Exotel took the message: it has a Sid and has not (already) failed."""
        return bool(self.sid) and self.status not in FAILURE_STATUSES

    @classmethod
    def from_api(cls, record: Mapping[str, Any]) -> SmsResult:
        """Build from an ``SMSMessage`` mapping (JSON object or converted XML element).

        Field names are matched case-insensitively (one documented XML example says
        ``SMSUnits``); numbers may come as strings and vice versa; unknown fields stay in raw.
        """
        low = {str(k).lower(): v for k, v in record.items()}
        return cls(
            sid=_text(low.get("sid")),
            to=_text(low.get("to")),
            sender=_text(low.get("from")),
            status=normalize_exotel_status(low.get("status")),
            detailed_status_code=parse_code(low.get("detailedstatuscode")),
            detailed_status=_text(low.get("detailedstatus")),
            sms_units=parse_code(low.get("smsunits")),
            price=_decimal(low.get("price")),
            date_created=parse_exotel_datetime(low.get("datecreated")),
            date_updated=parse_exotel_datetime(low.get("dateupdated")),
            date_sent=parse_exotel_datetime(low.get("datesent")),
            body=_text(low.get("body"), keep_empty=True),
            direction=_text(low.get("direction")),
            account_sid=_text(low.get("accountsid")),
            uri=_text(low.get("uri")),
            raw=MappingProxyType(dict(record)),
        )


@dataclass(frozen=True)
class BulkResult:
    """A bulk answer: one ``SmsResult`` per recipient/message, in request order."""

    http_status: int
    results: tuple[SmsResult, ...]

    @property
    def partial(self) -> bool:
        """HTTP 207: some entries were refused (``Sid`` null, ``Status`` failed)."""
        return self.http_status == 207


# --------------------------------------------------------------------------- parsing


def _text(value: Any, *, keep_empty: bool = False) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if text == "" and not keep_empty:
        return None
    return text


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        # str() first: a JSON float 0.12 must become Decimal('0.12'), not its binary expansion.
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def parse_exotel_datetime(value: object) -> datetime | None:
    """An aware datetime from Exotel's timestamp, or None for null, junk and placeholders.

    Naive 'YYYY-MM-DD HH:mm:ss' is India time. '1970-01-01 05:30:00' (the Unix epoch in
    IST) and anything at or before the epoch is Exotel's "not yet", so None.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        if not text or text.startswith("0000-00-00"):
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"  # fromisoformat on 3.10 does not know 'Z'
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=IST)
    try:
        if parsed.timestamp() <= 0:
            return None
        # A value with no UTC equivalent (9999-12-31 at -14:00) could not be stored.
        parsed.astimezone(timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return parsed


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date), never < 0."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when is None:  # Python 3.10 returns None for some junk
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _xml_record(element: ET.Element) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for child in element:
        record[child.tag] = _xml_record(child) if len(child) else child.text
    return record


def _load_payload(text: str, content_type: str) -> Any:
    """JSON, or XML converted to the same shape as the JSON answers. ValueError if unreadable."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped:
        raise ValueError("empty body")
    if "xml" in content_type.lower() or stripped.startswith("<"):
        if _XML_DECLS_RE.search(stripped):
            raise ValueError("XML with DOCTYPE/ENTITY declarations is refused")
        try:
            root = ET.fromstring(stripped)  # noqa: S314 -- declarations refused above
        except ET.ParseError as exc:
            raise ValueError(f"invalid XML: {exc}") from None
        children = list(root) if root.tag == "TwilioResponse" else [root]
        sms = [c for c in children if c.tag.lower() == "smsmessage"]
        if sms:
            return [{"SMSMessage": _xml_record(c)} for c in sms]
        return {c.tag: (_xml_record(c) if len(c) else c.text) for c in children}
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def _get_ci(mapping: Mapping[str, Any], key: str) -> Any:
    key = key.lower()
    for k, v in mapping.items():
        if str(k).lower() == key:
            return v
    return None


def _rest_exception(payload: Any) -> Mapping[str, Any] | None:
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if isinstance(payload, Mapping):
        found = _get_ci(payload, "RestException")
        if isinstance(found, Mapping):
            return found
    return None


def _sms_records(payload: Any) -> list[Mapping[str, Any]] | None:
    items = payload if isinstance(payload, list) else [payload]
    records: list[Mapping[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            return None
        inner = _get_ci(item, "SMSMessage")
        if isinstance(inner, Mapping):
            records.append(inner)
        elif isinstance(inner, list) and all(isinstance(i, Mapping) for i in inner):
            records.extend(inner)
        elif inner is None and _get_ci(item, "Sid") is not None:
            records.append(item)  # a bare record, without the SMSMessage wrapper
        else:
            return None
    return records


def _snippet(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def parse_sms_response(
    text: str,
    *,
    http_status: int = 200,
    content_type: str = "",
    context: Mapping[str, Any] | None = None,
    retry_after: float | None = None,
) -> list[SmsResult]:
    """The ``SMSMessage`` records of an Exotel answer (JSON or XML), in order.

    Raises an ``ExotelAPIError`` subclass for error answers (``RestException`` or an error
    status) and ``ExotelResponseError`` for a 2xx answer that cannot be read.
    """
    ok = 200 <= http_status < 300
    try:
        payload = _load_payload(text, content_type)
    except ValueError as exc:
        if ok:
            raise ExotelResponseError(
                str(exc), http_status=http_status, raw_body=text, context=context
            ) from None
        # An error page from a proxy or load balancer: classify by status alone.
        raise error_for_response(
            http_status,
            None,
            _snippet(text) or None,
            context=context,
            retry_after=retry_after,
            raw_body=text,
        ) from None
    error = _rest_exception(payload)
    if error is not None:
        body_status = parse_code(_get_ci(error, "Status"))
        # A RestException inside a 2xx answer: let the body's own status choose the class.
        status = body_status if ok and body_status is not None and body_status >= 400 else None
        raise error_for_response(
            status or http_status,
            parse_code(_get_ci(error, "Code")),
            _text(_get_ci(error, "Message")),
            context=context,
            retry_after=retry_after,
            raw_body=text,
        )
    if not ok:
        raise error_for_response(
            http_status,
            None,
            _snippet(text) or None,
            context=context,
            retry_after=retry_after,
            raw_body=text,
        )
    records = _sms_records(payload)
    if records is None:
        raise ExotelResponseError(
            "no SMSMessage in the answer", http_status=http_status, raw_body=text, context=context
        )
    return [SmsResult.from_api(r) for r in records]


# --------------------------------------------------------------------------- validation


def _require_text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExotelRequestError(f"{name} must be a non-empty string; got {value!r}.")
    return value.strip()


def _check_body(body: Any, name: str = "body") -> str:
    if not isinstance(body, str) or not body:
        raise ExotelRequestError(
            f"{name} must be a non-empty string (Exotel refuses an empty Body with 40200)."
        )
    if len(body) > MAX_BODY_LENGTH:
        raise ExotelRequestError(
            f"{name} is {len(body)} characters; Exotel accepts at most {MAX_BODY_LENGTH}."
        )
    return body


def _choice(value: Any, allowed: Sequence[str], name: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if text not in allowed:
        raise ExotelRequestError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    return text


def _flag(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    raise ExotelRequestError(f"{name} must be True or False; got {value!r}.")


def _identifier(value: Any, name: str) -> str:
    # DLT ids are long digit strings; an int is accepted (and sent as its digits).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _require_text(value, name)


def _recipients(to: Any, name: str) -> list[str]:
    if isinstance(to, (str, bytes)) or not isinstance(to, Sequence):
        raise ExotelRequestError(f"{name} must be a list of numbers, not {type(to).__name__}.")
    count = len(to)
    if count == 0:
        raise ExotelRequestError(f"{name} is empty: give at least one number.")
    if count > MAX_RECIPIENTS:
        raise ExotelRequestError(
            f"send_bulk accepts at most {MAX_RECIPIENTS} numbers per request; got {count}. "
            "Split larger sends (the sending layer does this for you)."
        )
    return [_require_text(number, f"{name}[{i}]") for i, number in enumerate(to)]


def shorten_url_params_form(params: Mapping[str, Any]) -> Form:
    """``ShortenUrlParams[...]`` form fields; ExotelRequestError for what Exotel would refuse."""
    if not isinstance(params, Mapping):
        raise ExotelRequestError("shorten_url_params must be a mapping.")
    exotel_names = set(SHORTEN_URL_PARAMS.values())
    form: Form = []
    for key, value in params.items():
        name = SHORTEN_URL_PARAMS.get(key, key if key in exotel_names else None)
        if name is None:
            allowed = ", ".join([*SHORTEN_URL_PARAMS, *SHORTEN_URL_PARAMS.values()])
            raise ExotelRequestError(
                f"shorten_url_params has an unknown key {key!r}; expected one of {allowed}."
            )
        if value is None:
            continue
        label = f"shorten_url_params[{key!r}]"
        if name == "Tracking":
            text = _flag(value, label)
        elif name == "TimeToExpiry":
            minutes = parse_code(value) if not isinstance(value, float) else None
            if minutes is None or not 1 <= minutes <= MAX_TIME_TO_EXPIRY:
                raise ExotelRequestError(
                    f"{label} must be whole minutes from 1 to {MAX_TIME_TO_EXPIRY}; got {value!r}."
                )
            text = str(minutes)
        else:
            text = _require_text(value, label)
        form.append((f"ShortenUrlParams[{name}]", text))
    return form


def _options(
    *,
    encoding_type: str | None = None,
    shorten_url: bool | None = None,
    shorten_url_params: Mapping[str, Any] | None = None,
    status_callback: str | None = None,
    dlt_entity_id: str | int | None = None,
    dlt_template_id: str | int | None = None,
    sms_type: str | None = None,
    custom_field: str | None = None,
    priority: str | None = None,
) -> Form:
    """The optional parameters, validated, under Exotel's names, in the documented order."""
    form: Form = []
    if encoding_type is not None:
        form.append(("EncodingType", _choice(encoding_type, ENCODING_TYPES, "encoding_type")))
    if shorten_url is not None:
        form.append(("ShortenUrl", _flag(shorten_url, "shorten_url")))
    if shorten_url_params:
        form.extend(shorten_url_params_form(shorten_url_params))
    if status_callback is not None:
        url = _require_text(status_callback, "status_callback")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ExotelRequestError("status_callback must be an http(s) URL.")
        form.append(("StatusCallback", url))
    if dlt_entity_id is not None:
        form.append(("DltEntityId", _identifier(dlt_entity_id, "dlt_entity_id")))
    if dlt_template_id is not None:
        form.append(("DltTemplateId", _identifier(dlt_template_id, "dlt_template_id")))
    if sms_type is not None:
        form.append(("SmsType", _choice(sms_type, SMS_TYPES, "sms_type")))
    if custom_field is not None:
        if not isinstance(custom_field, (str, int)) or isinstance(custom_field, bool):
            raise ExotelRequestError(f"custom_field must be a string; got {custom_field!r}.")
        form.append(("CustomField", str(custom_field)))
    if priority is not None:
        form.append(("Priority", _choice(priority, PRIORITIES, "priority")))
    return form


def _timeout(value: float | tuple[float, float]) -> tuple[float, float]:
    pair: tuple[Any, ...] = value if isinstance(value, tuple) else (value, value)
    if len(pair) != 2 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in pair
    ):
        raise ExotelRequestError(
            f"timeout must be a positive number or a (connect, read) pair; got {value!r}."
        )
    return float(pair[0]), float(pair[1])


def _base_url(subdomain: str | None, base_url: str | None) -> str:
    """The API root, refusing anything that could put credentials in a URL."""
    if base_url:
        parts = urlsplit(base_url)
        # Never echo the URL itself: it may hold the very secret we are refusing.
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise ExotelRequestError(
                "base_url must not contain credentials (user:password@); "
                "pass api_key and api_token instead."
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExotelRequestError("base_url must be an http(s) URL such as https://host:port.")
        if parts.query or parts.fragment:
            raise ExotelRequestError("base_url must not have a query string or fragment.")
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    host = (subdomain or DEFAULT_SUBDOMAIN).strip()
    # Exotel's documentation writes the subdomain as '@api.exotel.com'.
    host = host[1:] if host.startswith("@") else host
    if not _HOST_RE.match(host):
        raise ExotelRequestError(
            "subdomain must be a host name such as api.exotel.com or api.in.exotel.com "
            "(no scheme, path or credentials); use base_url for a full URL."
        )
    return f"https://{host}"


# --------------------------------------------------------------------------- client


class ExotelClient:
    """Exotel's SMS API over one pooled HTTP session. Thread-safe for concurrent calls.

    No call is ever retried here: whether a retry is safe depends on the exception's
    ``retryable`` / ``outcome_unknown`` flags, and the sending layer decides.
    """

    # Kept off Django's DEBUG error page: a bad base_url or timeout raises from this frame.
    @sensitive_variables("api_key", "api_token")
    def __init__(
        self,
        account_sid: str,
        api_key: str,
        api_token: str,
        *,
        subdomain: str = DEFAULT_SUBDOMAIN,
        base_url: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        pool_maxsize: int = 10,
    ) -> None:
        self.account_sid = _require_text(account_sid, "account_sid")
        if not isinstance(api_key, str) or not api_key:
            raise ExotelRequestError("api_key must be a non-empty string.")
        if not isinstance(api_token, str) or not api_token:
            raise ExotelRequestError("api_token must be a non-empty string.")
        self.base_url = _base_url(subdomain, base_url)
        self.host = urlsplit(self.base_url).netloc
        self.timeout = _timeout(timeout)
        self._secrets = tuple(s for s in (api_token, api_key) if len(s) >= 4)
        self._owns_session = session is None
        if session is None:
            session = requests.Session()
            # No urllib3 retries: a POST retried blindly can send the SMS twice.
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        session.auth = HTTPBasicAuth(api_key, api_token)
        session.headers["User-Agent"] = USER_AGENT
        session.headers["Accept"] = "application/json"
        self._session = session

    @classmethod
    def from_settings(cls, account: str | None = None) -> ExotelClient:
        """A client for a configured account (the default one when ``account`` is None)."""
        from django_exotel_sms.conf import get_account  # lazy: keeps this module Django-free

        acct = get_account(account)
        return cls(
            acct.account_sid,
            acct.api_key,
            acct.api_token,
            subdomain=acct.subdomain or DEFAULT_SUBDOMAIN,
            base_url=acct.base_url or None,
            timeout=(acct.connect_timeout, acct.read_timeout),
        )

    def __repr__(self) -> str:
        return f"<ExotelClient account_sid={self.account_sid!r} host={self.host!r}>"

    # ----------------------------------------------------------------- public API

    def send(
        self,
        to: str,
        body: str,
        sender: str,
        *,
        encoding_type: str | None = None,
        shorten_url: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        status_callback: str | None = None,
        dlt_entity_id: str | int | None = None,
        dlt_template_id: str | int | None = None,
        sms_type: str | None = None,
        custom_field: str | None = None,
        priority: str | None = None,
    ) -> SmsResult:
        """Send one SMS (``POST Sms/send``)."""
        form: Form = [
            ("From", _require_text(sender, "sender")),
            ("To", _require_text(to, "to")),
            ("Body", _check_body(body)),
        ]
        form += _options(
            encoding_type=encoding_type,
            shorten_url=shorten_url,
            shorten_url_params=shorten_url_params,
            status_callback=status_callback,
            dlt_entity_id=dlt_entity_id,
            dlt_template_id=dlt_template_id,
            sms_type=sms_type,
            custom_field=custom_field,
            priority=priority,
        )
        response, context = self._request("POST", "Sms/send", form, recipients=1)
        results = self._results(response, context, expected=1)
        return results[0]

    def send_bulk(
        self,
        to: Sequence[str],
        body: str,
        sender: str,
        *,
        encoding_type: str | None = None,
        shorten_url: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        status_callback: str | None = None,
        dlt_entity_id: str | int | None = None,
        dlt_template_id: str | int | None = None,
        sms_type: str | None = None,
        custom_field: str | None = None,
        priority: str | None = None,
    ) -> BulkResult:
        """The same body to up to 100 numbers (``POST Sms/send`` with ``To[]`` repeated)."""
        numbers = _recipients(to, "to")
        form: Form = [("From", _require_text(sender, "sender"))]
        form += [("To[]", number) for number in numbers]
        form.append(("Body", _check_body(body)))
        form += _options(
            encoding_type=encoding_type,
            shorten_url=shorten_url,
            shorten_url_params=shorten_url_params,
            status_callback=status_callback,
            dlt_entity_id=dlt_entity_id,
            dlt_template_id=dlt_template_id,
            sms_type=sms_type,
            custom_field=custom_field,
            priority=priority,
        )
        response, context = self._request("POST", "Sms/send", form, recipients=len(numbers))
        results = self._results(response, context, expected=len(numbers))
        return BulkResult(http_status=response.status_code, results=tuple(results))

    def send_dynamic_bulk(
        self,
        messages: Sequence[Mapping[str, Any]],
        sender: str | None = None,
        *,
        encoding_type: str | None = None,
        shorten_url: bool | None = None,
        shorten_url_params: Mapping[str, Any] | None = None,
        status_callback: str | None = None,
        dlt_entity_id: str | int | None = None,
        custom_field: str | None = None,
        priority: str | None = None,
    ) -> BulkResult:
        """A different body per number, up to 100 (``POST Sms/bulksend``, beta at Exotel).

        Each message: ``to``, ``body``, optional ``sender`` (else the top-level ``sender``),
        ``sms_type`` and ``dlt_template_id``.
        """
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
            raise ExotelRequestError("messages must be a list of mappings.")
        if not messages:
            raise ExotelRequestError("messages is empty: give at least one message.")
        if len(messages) > MAX_RECIPIENTS:
            raise ExotelRequestError(
                f"send_dynamic_bulk accepts at most {MAX_RECIPIENTS} messages per request; "
                f"got {len(messages)}. Split larger sends (the sending layer does this for you)."
            )
        form: Form = []
        if sender is not None:
            form.append(("From", _require_text(sender, "sender")))
        for i, message in enumerate(messages):
            form += self._dynamic_message(i, message, has_default_sender=sender is not None)
        form += _options(
            encoding_type=encoding_type,
            shorten_url=shorten_url,
            shorten_url_params=shorten_url_params,
            status_callback=status_callback,
            dlt_entity_id=dlt_entity_id,
            custom_field=custom_field,
            priority=priority,
        )
        response, context = self._request("POST", "Sms/bulksend", form, recipients=len(messages))
        results = self._results(response, context, expected=len(messages))
        return BulkResult(http_status=response.status_code, results=tuple(results))

    def get_message(self, sid: str) -> SmsResult | None:
        """Details and status of one SMS; None for Exotel's 'No matching results' answer."""
        sid = _require_text(sid, "sid")
        response, context = self._request("GET", f"SMS/Messages/{quote(sid, safe='')}")
        text = _response_text(response)
        try:
            results = parse_sms_response(
                text,
                http_status=response.status_code,
                content_type=response.headers.get("Content-Type", ""),
                context=context,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        except (ExotelAPIError, ExotelResponseError):
            # Documented: an unknown Sid is HTTP 200 "No matching results" (shape undocumented).
            if response.status_code in (200, 404) and _NO_MATCH in text.lower():
                return None
            raise
        found = [r for r in results if r.sid]
        return found[0] if found else None

    def close(self) -> None:
        """Close the session's pooled connections (only a session this client created)."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> ExotelClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- internals

    @staticmethod
    def _dynamic_message(i: int, message: Any, *, has_default_sender: bool) -> Form:
        if not isinstance(message, Mapping):
            raise ExotelRequestError(f"messages[{i}] must be a mapping; got {message!r}.")
        unknown = set(message) - set(_DYNAMIC_MESSAGE_KEYS)
        if unknown:
            raise ExotelRequestError(
                f"messages[{i}] has unknown keys {sorted(unknown)}; "
                f"expected {', '.join(_DYNAMIC_MESSAGE_KEYS)}."
            )
        prefix = f"Messages[{i}]"
        form: Form = [
            (f"{prefix}[To]", _require_text(message.get("to"), f"messages[{i}]['to']")),
            (f"{prefix}[Body]", _check_body(message.get("body"), f"messages[{i}]['body']")),
        ]
        if message.get("sender") is not None:
            form.append((f"{prefix}[From]", _require_text(message["sender"], "sender")))
        elif not has_default_sender:
            raise ExotelRequestError(
                f"messages[{i}] has no 'sender' and no top-level sender was given."
            )
        if message.get("sms_type") is not None:
            sms_type = _choice(message["sms_type"], SMS_TYPES, f"messages[{i}]['sms_type']")
            form.append((f"{prefix}[SmsType]", sms_type))
        if message.get("dlt_template_id") is not None:
            template = _identifier(message["dlt_template_id"], f"messages[{i}]['dlt_template_id']")
            form.append((f"{prefix}[DltTemplateId]", template))
        return form

    def _request(
        self, method: str, endpoint: str, form: Form | None = None, *, recipients: int = 0
    ) -> tuple[requests.Response, dict[str, Any]]:
        path = f"/v1/Accounts/{quote(self.account_sid, safe='')}/{endpoint}.json"
        context: dict[str, Any] = {"method": method, "path": path}
        started = time.monotonic()
        error: ExotelTransportError | None = None
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                data=form,
                timeout=self.timeout,
                allow_redirects=False,  # a redirected POST would turn into a GET
            )
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            error = self._transport_error(exc, context)
        metrics.http_request(endpoint, "error" if error else response.status_code, started)
        if error is not None:
            logger.debug(
                "Exotel %s %s failed after %.0f ms (%d recipients): %s",
                method,
                path,
                (time.monotonic() - started) * 1000,
                recipients,
                type(error).__name__,
            )
            # Raised outside the except block so neither __cause__ nor __context__ holds the
            # requests exception (its prepared request carries the Authorization header);
            # the useful part of its text is in our message.
            raise error
        logger.debug(
            "Exotel %s %s -> HTTP %s in %.0f ms (%d recipients)",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            recipients,
        )
        return response, context

    def _results(
        self, response: requests.Response, context: dict[str, Any], *, expected: int
    ) -> list[SmsResult]:
        text = _response_text(response)
        results = parse_sms_response(
            text,
            http_status=response.status_code,
            content_type=response.headers.get("Content-Type", ""),
            context=context,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
        if len(results) != expected:
            # Results are matched to recipients by position only (Exotel may rewrite the
            # numbers), so a short or long answer cannot be trusted entry by entry.
            raise ExotelResponseError(
                f"expected {expected} SMSMessage record(s), got {len(results)}",
                http_status=response.status_code,
                raw_body=text,
                context=context,
            )
        return results

    def _transport_error(self, exc: Exception, context: dict[str, Any]) -> ExotelTransportError:
        where = f"{context['method']} {context['path']}"
        detail = self._redact(f"{type(exc).__name__}: {exc}")
        cls: type[ExotelTransportError]
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            cls, what = ExotelConnectionError, "could not connect to Exotel (connect timeout)"
        elif isinstance(exc, requests.exceptions.ReadTimeout):
            cls, what = (
                ExotelReadTimeout,
                f"no answer from Exotel within {self.timeout[1]:g}s; the request may have "
                "been accepted",
            )
        elif isinstance(exc, requests.exceptions.ConnectionError) and _never_sent(exc):
            cls, what = ExotelConnectionError, "could not connect to Exotel"
        else:
            # Dropped after sending (RemoteDisconnected, reset while reading, truncated body).
            cls, what = (
                ExotelOutcomeUnknown,
                "the connection to Exotel broke after the request was sent; it may have "
                "been accepted",
            )
        return cls(f"{what} for {where}: {detail}", context=context)

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing we build should contain a secret, but scrub anyway.
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never established, so Exotel cannot have the request.

    requests wraps pre-connection failures (refused, DNS, connect timeout, TLS handshake,
    proxy) in a ``MaxRetryError``; read-side failures (``ProtocolError('Connection aborted.',
    RemoteDisconnected(...))``, resets) arrive unwrapped and may follow a delivered request.
    """
    reason = exc.args[0] if exc.args else None
    if not isinstance(reason, urllib3.exceptions.MaxRetryError):
        return False
    return isinstance(
        reason.reason,
        (
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.ProxyError,
            urllib3.exceptions.SSLError,
        ),
    )


def _response_text(response: requests.Response) -> str:
    # requests would guess the charset of a JSON body; Exotel's JSON is UTF-8.
    match = re.search(r"charset=\"?([\w.:-]+)", response.headers.get("Content-Type", ""), re.I)
    try:
        return response.content.decode(match.group(1) if match else "utf-8", errors="replace")
    except LookupError:
        return response.content.decode("utf-8", errors="replace")
