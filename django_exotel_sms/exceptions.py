"""One exception hierarchy for everything that can go wrong talking to Exotel.

Every error code in Exotel's documentation has a home in ``ERROR_CODES``; unknown
codes still land in a class chosen by HTTP status, with the code kept.

Three flags answer the question a sender really has ("may I send it again?"):

* ``retryable`` -- Exotel certainly did not act on the request; sending it again is safe.
* ``throttled`` -- slow down: the account's request rate is over Exotel's limit.
* ``outcome_unknown`` -- the request may have been accepted (Exotel has no idempotency
  key), so sending again may send the SMS twice; ask Exotel (details call) instead.

No exception ever carries the API key or token: messages are built from the method,
the path (account sid only) and Exotel's own answer. All of them pickle with their
attributes intact (Celery pickles exceptions), and rebuild from ``args`` alone
(Celery's JSON result backend calls ``cls(*args)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ERROR_CODES",
    "ErrorCode",
    "ExotelAPIError",
    "ExotelAccountError",
    "ExotelAuthError",
    "ExotelBadGateway",
    "ExotelConnectionError",
    "ExotelEndpointError",
    "ExotelError",
    "ExotelGatewayError",
    "ExotelGatewayTimeout",
    "ExotelInsufficientBalance",
    "ExotelOutcomeUnknown",
    "ExotelReadTimeout",
    "ExotelRequestError",
    "ExotelResponseError",
    "ExotelServerError",
    "ExotelThrottled",
    "ExotelTransportError",
    "ExotelTrialLimit",
    "ExotelValidationError",
    "error_for_response",
    "trim_body",
]

RAW_BODY_LIMIT = 2000


def trim_body(text: str | None, limit: int = RAW_BODY_LIMIT) -> str | None:
    """A response body cut to ``limit`` characters, saying how much was dropped."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters]"


def _rebuild(cls: type[ExotelError], args: tuple[Any, ...], state: dict[str, Any]) -> ExotelError:
    # Bypasses __init__: keyword-only constructor arguments are restored from the state.
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class ExotelError(Exception):
    """Base class of every error raised by django-exotel-sms' Exotel client."""

    retryable: bool = False
    throttled: bool = False
    outcome_unknown: bool = False

    def __init__(self, message: str = "", *, context: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Non-secret facts about the call: method and path (with the account sid).
        self.context: dict[str, Any] = dict(context or {})

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))

    def _where(self) -> str:
        method = self.context.get("method")
        path = self.context.get("path")
        if method and path:
            return f"{method} {path}"
        return str(path or "the request")


class ExotelRequestError(ExotelError, ValueError):
    """An invalid call, caught before any HTTP request was made."""


class ExotelTransportError(ExotelError):
    """The HTTP exchange itself failed (network level); no answer from Exotel was read."""


class ExotelConnectionError(ExotelTransportError):
    """No connection (refused, connect timeout, DNS): Exotel certainly did not get the request."""

    retryable = True


class ExotelOutcomeUnknown(ExotelTransportError):
    """The request was (or may have been) sent but no answer was read: it may have been accepted.

    Raised as such when the connection broke after sending (server closed the socket,
    connection reset while reading the answer, body cut short).
    """

    outcome_unknown = True


class ExotelReadTimeout(ExotelOutcomeUnknown):
    """The request was sent and no answer came within the read timeout: outcome unknown."""


class ExotelResponseError(ExotelError):
    """Exotel answered, but the body could not be understood (invalid JSON/XML, odd shape).

    After a 2xx answer the request was most likely accepted, so ``outcome_unknown`` is True.
    """

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        raw_body: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, context=context)
        self.http_status = http_status
        self.raw_body = trim_body(raw_body)
        self.outcome_unknown = http_status is None or 200 <= http_status < 300

    def __str__(self) -> str:
        status = f"HTTP {self.http_status}" if self.http_status is not None else "an answer"
        return f"Exotel sent {status} for {self._where()} that could not be read: {self.message}"


class ExotelAPIError(ExotelError):
    """An error answer from Exotel (``RestException`` or an error HTTP status)."""

    def __init__(
        self,
        message: str = "",
        *,
        http_status: int | None = None,
        code: int | None = None,
        context: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
        raw_body: str | None = None,
    ) -> None:
        super().__init__(message, context=context)
        self.http_status = http_status
        self.code = code
        self.retry_after = retry_after
        self.raw_body = trim_body(raw_body)

    @property
    def description(self) -> str | None:
        """The documented meaning of ``code``, or None for undocumented codes."""
        known = ERROR_CODES.get(self.code) if self.code is not None else None
        return known.description if known else None

    def __str__(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status is not None else "no HTTP status"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        text = f"Exotel rejected {self._where()}: {', '.join(parts)}"
        message = self.message or self.description
        if message:
            text += f": {message}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g}s)"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(http_status={self.http_status!r}, code={self.code!r}, "
            f"message={self.message!r})"
        )


class ExotelThrottled(ExotelAPIError):
    """Too many requests (429/40402, 429/40403, 503/40405, legacy 35006): retry later."""

    retryable = True
    throttled = True


class ExotelTrialLimit(ExotelThrottled):
    """429/40404: a trial account past its 10-SMS limit. Waiting will not help.

    A 429 like the throttling errors (so ``except ExotelThrottled`` sees it), but neither
    retryable nor a reason to slow the account's request rate down.
    """

    retryable = False
    throttled = False


class ExotelAuthError(ExotelAPIError):
    """Missing or wrong credentials or account sid (401, 401/34010, 400/34001, 403/34009)."""


class ExotelAccountError(ExotelAPIError):
    """The account may not do this (trial, KYC, inactive, country not enabled, balance)."""


class ExotelInsufficientBalance(ExotelAccountError):
    """403/40001: not enough balance; recharge the account."""


class ExotelValidationError(ExotelAPIError):
    """The request's parameters were refused (400)."""


class ExotelEndpointError(ExotelAPIError):
    """Unknown SMS endpoint or method (405/40502, 400/40501)."""


class ExotelServerError(ExotelAPIError):
    """An error inside Exotel (500/35000, 500/40100, other 5xx): Exotel did not send it."""

    retryable = True


class ExotelGatewayError(ExotelServerError):
    """502 or 504 without an Exotel code: a proxy or gateway in front of Exotel answered.

    Unlike Exotel's own 5xx errors, the request may have reached Exotel and been accepted
    before the proxy gave up (or lost the answer), so this is outcome-unknown, not
    retryable: resending could send the SMS twice. Exotel's own error body with a code
    stays an ``ExotelServerError`` (retryable); 503 and 429 stay throttling.
    """

    retryable = False
    outcome_unknown = True


class ExotelBadGateway(ExotelGatewayError):
    """502 without an Exotel code: a proxy got no valid answer from Exotel's application."""


class ExotelGatewayTimeout(ExotelGatewayError):
    """504 without an Exotel code: a gateway gave up waiting for Exotel's application."""


@dataclass(frozen=True)
class ErrorCode:
    code: int
    http_status: int
    exc_class: type[ExotelAPIError]
    description: str


_CODES = [
    # POST (/send, /bulksend)
    ErrorCode(40000, 403, ExotelAccountError, "Not allowed to send promotional SMS(s)."),
    ErrorCode(340030, 403, ExotelAccountError, "Your account is not yet KYC compliant;"),
    ErrorCode(
        40001,
        403,
        ExotelInsufficientBalance,
        "Insufficient balance to send $n sms. Please recharge your account.",
    ),
    ErrorCode(
        40003,
        403,
        ExotelAccountError,
        "Your account is not configured to send SMSes to this country.",
    ),
    ErrorCode(35000, 500, ExotelServerError, "Internal Server Error"),
    ErrorCode(40100, 500, ExotelServerError, "Error Processing Request"),
    ErrorCode(40200, 400, ExotelValidationError, "Message body cannot be empty."),
    ErrorCode(
        40201, 400, ExotelValidationError, "Invalid parameters: Messages is a mandatory field"
    ),
    ErrorCode(40202, 400, ExotelValidationError, "Message body is invalid."),
    ErrorCode(40203, 400, ExotelValidationError, "All the destination numbers are invalid"),
    ErrorCode(
        40204, 400, ExotelValidationError, "Invalid parameters: SmsType is not set correctly"
    ),
    ErrorCode(40205, 400, ExotelValidationError, "Empty From field in the request"),
    ErrorCode(
        40206,
        400,
        ExotelValidationError,
        "Invalid parameters: From format is not matching with the SmsType",
    ),
    ErrorCode(
        40207, 400, ExotelValidationError, "Array passed as Value in params. Expecting String"
    ),
    ErrorCode(40208, 400, ExotelValidationError, "Invalid parameters: Messages has to be an array"),
    ErrorCode(40209, 400, ExotelValidationError, "Encoding type is not properly set."),
    ErrorCode(40210, 400, ExotelValidationError, "Invalid parameters: From is a mandatory field"),
    ErrorCode(
        40300,
        400,
        ExotelValidationError,
        "No transactional template found and no numeric sender ID exists in your account "
        "for sending it as promotional",
    ),
    ErrorCode(
        40301, 400, ExotelValidationError, "No transactional sender ID found in your account"
    ),
    ErrorCode(
        40400,
        400,
        ExotelValidationError,
        "Not more than 100 SMSs are allowed in one API request (dynamic bulk).",
    ),
    ErrorCode(40402, 429, ExotelThrottled, "Too many POST requests."),
    ErrorCode(
        40404,
        429,
        ExotelTrialLimit,
        "Please note that you can send only 10 SMS from your account during the trial phase.",
    ),
    ErrorCode(40405, 503, ExotelThrottled, "Service Unavailable (throttle limit exceeded)"),
    ErrorCode(35006, 503, ExotelThrottled, "Service Unavailable (legacy code, now 40405)"),
    ErrorCode(
        40406,
        400,
        ExotelValidationError,
        "Not more than 100 SMSs are allowed in one API request (static bulk).",
    ),
    ErrorCode(40502, 405, ExotelEndpointError, "This method is not supported"),
    # GET (/SMS/Messages)
    ErrorCode(40403, 429, ExotelThrottled, "Too many GET requests."),
    ErrorCode(40501, 400, ExotelEndpointError, "Invalid parameters (unknown SMS endpoint)"),
    # Any call
    ErrorCode(40002, 403, ExotelAccountError, "Account inactive."),
    ErrorCode(40500, 400, ExotelValidationError, "Invalid Parameters"),
    ErrorCode(34009, 403, ExotelAuthError, "Action forbidden on given resource;"),
    ErrorCode(34010, 401, ExotelAuthError, "Unauthorized;"),
    ErrorCode(34001, 400, ExotelAuthError, "Bad or missing parameters in request.;"),
]

ERROR_CODES: dict[int, ErrorCode] = {e.code: e for e in _CODES}


def _class_for_status(http_status: int | None, code: int | None) -> type[ExotelAPIError]:
    if http_status is None:
        return ExotelAPIError
    if http_status == 401:
        return ExotelAuthError
    if http_status in (402, 403):
        return ExotelAccountError
    if http_status in (404, 405):
        return ExotelEndpointError
    if http_status in (429, 503):
        return ExotelThrottled
    if http_status == 502 and code is None:
        return ExotelBadGateway
    if http_status == 504 and code is None:
        return ExotelGatewayTimeout
    if 500 <= http_status < 600:
        return ExotelServerError
    if 400 <= http_status < 500:
        # Includes the documented code-less 400s (unsupported version, /Accounts/ missing).
        return ExotelValidationError
    return ExotelAPIError


def error_for_response(
    http_status: int | None,
    code: int | None,
    message: str | None,
    *,
    context: Mapping[str, Any] | None = None,
    retry_after: float | None = None,
    raw_body: str | None = None,
) -> ExotelAPIError:
    """The exception for an error answer: chosen by Exotel's code first, then by HTTP status."""
    known = ERROR_CODES.get(code) if code is not None else None
    cls = known.exc_class if known else _class_for_status(http_status, code)
    return cls(
        message or "",
        http_status=http_status,
        code=code,
        context=context,
        retry_after=retry_after,
        raw_body=raw_body,
    )
