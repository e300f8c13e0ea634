"""ExotelClient over real HTTP, against a throwaway server in a thread (not the sandbox).

Plain pytest, no Django settings needed.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import re
import socket
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from django_exotel_sms import __version__
from django_exotel_sms.client import ExotelClient
from django_exotel_sms.exceptions import (
    ExotelAuthError,
    ExotelConnectionError,
    ExotelError,
    ExotelOutcomeUnknown,
    ExotelReadTimeout,
    ExotelRequestError,
    ExotelResponseError,
    ExotelServerError,
    ExotelThrottled,
    ExotelValidationError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "exotel_examples"
SID = "acme1"
API_KEY = "k3y-for-tests-0001"
TOKEN = "tok3n-S3CRET-value"
BASIC = base64.b64encode(f"{API_KEY}:{TOKEN}".encode()).decode()
SECRETS = (TOKEN, BASIC)


def example(name: str) -> str:
    # The documentation page renders JSON indentation as U+00A0; Exotel sends spaces.
    return (FIXTURES / name).read_text(encoding="utf-8").replace("\xa0", " ")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)


@dataclass
class Reply:
    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False  # read the request, then hang up without answering
    delay: float = 0.0


class FakeExotel(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[Seen] = []
        self.reply: Callable[[Seen], Reply] = lambda seen: Reply(body=example("send_response.json"))
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, reply: Reply) -> None:
        self.reply = lambda seen: reply


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeExotel

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(self.command, self.path, dict(self.headers.items()), body)
        self.server.seen.append(seen)
        reply = self.server.reply(seen)
        if reply.close:
            self.close_connection = True
            return
        if reply.delay:
            self.server.stop.wait(reply.delay)
        payload = reply.body.encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (read-timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[FakeExotel]:
    server = FakeExotel()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(fake: FakeExotel) -> Iterator[ExotelClient]:
    with ExotelClient(SID, API_KEY, TOKEN, base_url=fake.url, timeout=(2.0, 5.0)) as c:
        yield c


def rest_exception(status: int, message: str, code: int | None = None) -> str:
    error: dict[str, Any] = {"Status": status, "Message": message}
    if code is not None:
        error["Code"] = code
    return json.dumps({"RestException": error})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# --------------------------------------------------------------------------- requests


def test_send_form_headers_and_path(fake: FakeExotel, client: ExotelClient) -> None:
    result = client.send(
        "+919876543210",
        "Hello & welcome: 100% ✓",
        "0XXXXXX4890",
        encoding_type="unicode",
        shorten_url=True,
        shorten_url_params={
            "header": "EXOTEL",
            "Tracking": True,
            "custom_domain": "go.example.com",
            "click_tracking_callback_url": "https://example.com/click",
            "time_to_expiry": 60,
        },
        status_callback="https://example.com/cb?t=abc",
        dlt_entity_id="1101234567890",
        dlt_template_id=1107161234567890123,
        sms_type="transactional",
        custom_field="order-42",
        priority="high",
    )
    (seen,) = fake.seen
    assert seen.method == "POST"
    assert seen.path == "/v1/Accounts/acme1/Sms/send.json"
    assert seen.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert seen.headers["Authorization"] == f"Basic {BASIC}"
    assert re.fullmatch(
        rf"django-exotel-sms/{re.escape(__version__)} python-requests/[\d.]+",
        seen.headers["User-Agent"],
    )
    assert seen.form == [
        ("From", "0XXXXXX4890"),
        ("To", "+919876543210"),
        ("Body", "Hello & welcome: 100% ✓"),
        ("EncodingType", "unicode"),
        ("ShortenUrl", "true"),
        ("ShortenUrlParams[Header]", "EXOTEL"),
        ("ShortenUrlParams[Tracking]", "true"),
        ("ShortenUrlParams[CustomDomain]", "go.example.com"),
        ("ShortenUrlParams[ClickTrackingCallbackUrl]", "https://example.com/click"),
        ("ShortenUrlParams[TimeToExpiry]", "60"),
        ("StatusCallback", "https://example.com/cb?t=abc"),
        ("DltEntityId", "1101234567890"),
        ("DltTemplateId", "1107161234567890123"),
        ("SmsType", "transactional"),
        ("CustomField", "order-42"),
        ("Priority", "high"),
    ]
    assert result.sid == "0f477d60517e6e6a0f6d9a7e9af8630e"
    assert result.detailed_status_code == 21010 and result.accepted


def test_send_bulk_repeats_to_in_order(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(body=example("static_bulk_response.json")))
    result = client.send_bulk(["XXXXX30240", "XXXXX30241"], "Hello World!", "0XXXXXX4890")
    (seen,) = fake.seen
    assert seen.path == "/v1/Accounts/acme1/Sms/send.json"
    assert seen.form == [
        ("From", "0XXXXXX4890"),
        ("To[]", "XXXXX30240"),
        ("To[]", "XXXXX30241"),
        ("Body", "Hello World!"),
    ]
    assert result.http_status == 200 and not result.partial
    assert [r.sid for r in result.results] == [
        "0f477d60517e6e6a0f6d9a7e9af8630e",
        "1393e66deb633e7297bcfa9a9da0bb37",
    ]


def test_send_bulk_partial_207(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(status=207, body=example("static_bulk_partial_207.json")))
    result = client.send_bulk(["555", "XXXXX30241"], "Hello World!", "0XXXXXX4890")
    assert result.partial
    failed, ok = result.results
    assert failed.sid is None and failed.status == "failed" and failed.detailed_status_code == 23010
    assert ok.accepted


def test_bulk_answer_with_wrong_count_is_outcome_unknown(
    fake: FakeExotel, client: ExotelClient
) -> None:
    fake.answer(Reply(body=example("static_bulk_response.json")))
    with pytest.raises(ExotelResponseError) as info:
        client.send_bulk(["1", "2", "3"], "Hello", "SENDER")
    assert info.value.outcome_unknown and "expected 3" in str(info.value)


def test_dynamic_bulk_form(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(body=example("dynamic_bulk_response.json")))
    result = client.send_dynamic_bulk(
        [
            {"to": "XXXXX30240", "body": "Hello World one"},
            {
                "to": "XXXXX30241",
                "body": "Hello World two",
                "sender": "OTHER",
                "sms_type": "promotional",
                "dlt_template_id": "1107000000000000002",
            },
        ],
        "0XXXXXX4890",
        status_callback="https://example.com/cb",
        dlt_entity_id="1101",
        custom_field="batch-7",
    )
    (seen,) = fake.seen
    assert seen.path == "/v1/Accounts/acme1/Sms/bulksend.json"
    assert seen.form == [
        ("From", "0XXXXXX4890"),
        ("Messages[0][To]", "XXXXX30240"),
        ("Messages[0][Body]", "Hello World one"),
        ("Messages[1][To]", "XXXXX30241"),
        ("Messages[1][Body]", "Hello World two"),
        ("Messages[1][From]", "OTHER"),
        ("Messages[1][SmsType]", "promotional"),
        ("Messages[1][DltTemplateId]", "1107000000000000002"),
        ("StatusCallback", "https://example.com/cb"),
        ("DltEntityId", "1101"),
        ("CustomField", "batch-7"),
    ]
    assert [r.body for r in result.results] == ["Hello World one", "Hello World two"]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda c: c.send_bulk(["9"] * 250, "b", "S"), "at most 100 numbers per request; got 250"),
        (lambda c: c.send_bulk(["9"] * 101, "b", "S"), "got 101"),
        (lambda c: c.send_bulk([], "b", "S"), "empty"),
        (lambda c: c.send_bulk("9876543210", "b", "S"), "list of numbers"),
        (lambda c: c.send_bulk(["9", ""], "b", "S"), "to[1]"),
        (
            lambda c: c.send_dynamic_bulk([{"to": "9", "body": "b"}] * 101, "S"),
            "at most 100 messages",
        ),
        (lambda c: c.send_dynamic_bulk([], "S"), "empty"),
        (lambda c: c.send_dynamic_bulk([{"to": "9", "body": "b"}]), "no 'sender'"),
        (lambda c: c.send_dynamic_bulk([{"to": "9", "body": "b", "from": "S"}], "S"), "'from'"),
        (lambda c: c.send("9", "", "S"), "body"),
        (lambda c: c.send("9", "x" * 2001, "S"), "2001 characters"),
        (lambda c: c.send("", "b", "S"), "to"),
        (lambda c: c.send("9", "b", ""), "sender"),
        (lambda c: c.send("9", "b", "S", encoding_type="utf8"), "encoding_type"),
        (lambda c: c.send("9", "b", "S", sms_type="otp"), "sms_type"),
        (lambda c: c.send("9", "b", "S", priority="urgent"), "priority"),
        (lambda c: c.send("9", "b", "S", shorten_url="yes"), "shorten_url"),
        (lambda c: c.send("9", "b", "S", shorten_url_params={"domain": "x"}), "'domain'"),
        (
            lambda c: c.send("9", "b", "S", shorten_url_params={"time_to_expiry": 0}),
            "time_to_expiry",
        ),
        (lambda c: c.send("9", "b", "S", status_callback="ftp://x"), "status_callback"),
        (lambda c: c.get_message(""), "sid"),
    ],
)
def test_invalid_calls_raise_before_any_request(
    fake: FakeExotel, client: ExotelClient, call: Callable[[ExotelClient], Any], fragment: str
) -> None:
    with pytest.raises(ExotelRequestError) as info:
        call(client)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)
    assert fake.seen == []


def test_bulk_limit_message_names_the_sending_layer(client: ExotelClient) -> None:
    with pytest.raises(ExotelRequestError) as info:
        client.send_bulk(["9"] * 250, "b", "S")
    assert str(info.value) == (
        "send_bulk accepts at most 100 numbers per request; got 250. "
        "Split larger sends (the sending layer does this for you)."
    )


# --------------------------------------------------------------------------- transport


def test_connection_refused_is_retryable() -> None:
    client = ExotelClient(SID, API_KEY, TOKEN, base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ExotelConnectionError) as info:
        client.send("9", "b", "S")
    exc = info.value
    assert exc.retryable and not exc.outcome_unknown
    assert exc.context == {"method": "POST", "path": "/v1/Accounts/acme1/Sms/send.json"}
    assert exc.__cause__ is None and exc.__context__ is None
    assert_no_secret(str(exc), repr(exc), repr(exc.args))


def test_read_timeout_is_outcome_unknown(fake: FakeExotel) -> None:
    fake.answer(Reply(delay=5.0, body=example("send_response.json")))
    client = ExotelClient(SID, API_KEY, TOKEN, base_url=fake.url, timeout=(2.0, 0.3))
    with pytest.raises(ExotelReadTimeout) as info:
        client.send("9", "b", "S")
    assert info.value.outcome_unknown and not info.value.retryable
    assert len(fake.seen) == 1  # the request did reach the server
    client.close()


def test_server_hanging_up_after_the_request_is_outcome_unknown(
    fake: FakeExotel, client: ExotelClient
) -> None:
    fake.answer(Reply(close=True))
    with pytest.raises(ExotelOutcomeUnknown) as info:
        client.send("9", "b", "S")
    assert type(info.value) is ExotelOutcomeUnknown
    assert not isinstance(info.value, ExotelConnectionError)
    assert info.value.outcome_unknown and not info.value.retryable
    assert len(fake.seen) == 1


# --------------------------------------------------------------------------- answers


def test_malformed_json_keeps_raw_body(fake: FakeExotel, client: ExotelClient) -> None:
    text = example("dynamic_bulk_partial_207_invalid.json")
    fake.answer(Reply(status=207, body=text))
    with pytest.raises(ExotelResponseError) as info:
        client.send_dynamic_bulk([{"to": "1", "body": "a"}, {"to": "2", "body": "b"}], "S")
    assert info.value.raw_body == text
    assert info.value.http_status == 207 and info.value.outcome_unknown
    assert info.value.context["path"] == "/v1/Accounts/acme1/Sms/bulksend.json"


def test_throttled_with_retry_after(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(
        Reply(
            status=429,
            body=rest_exception(429, "Too many POST requests.", 40402),
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(ExotelThrottled) as info:
        client.send("9", "b", "S")
    assert info.value.retry_after == 7.0
    assert info.value.retryable and info.value.throttled
    assert (info.value.http_status, info.value.code) == (429, 40402)


def test_throttled_503_with_http_date(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(
        Reply(
            status=503,
            body=rest_exception(503, "Service Unavailable", 40405),
            headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},  # in the past
        )
    )
    with pytest.raises(ExotelThrottled) as info:
        client.send("9", "b", "S")
    assert info.value.retry_after == 0.0 and info.value.code == 40405


def test_validation_and_auth_errors(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(status=400, body=rest_exception(400, "Empty From field", 40205)))
    with pytest.raises(ExotelValidationError) as info:
        client.send("9", "b", "S")
    assert str(info.value) == (
        "Exotel rejected POST /v1/Accounts/acme1/Sms/send.json: HTTP 400, code 40205: "
        "Empty From field"
    )
    fake.answer(Reply(status=401, body="Authentication is required to view this page."))
    with pytest.raises(ExotelAuthError) as auth:
        client.get_message("abc")
    assert auth.value.code is None and auth.value.http_status == 401


def test_html_error_page(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(status=502, body="<html>Bad Gateway</html>", content_type="text/html"))
    with pytest.raises(ExotelServerError) as info:
        client.send("9", "b", "S")
    # A proxy's code-less 502 may follow an accepted request: outcome unknown.
    assert info.value.outcome_unknown and not info.value.retryable
    assert info.value.raw_body == "<html>Bad Gateway</html>"
    fake.answer(Reply(status=500, body="<html>Internal Error</html>", content_type="text/html"))
    with pytest.raises(ExotelServerError) as server:
        client.send("9", "b", "S")
    assert server.value.retryable and not server.value.outcome_unknown


def test_xml_answer(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(body=example("send_response.xml"), content_type="application/xml"))
    result = client.send("9", "b", "S")
    assert result.sid == "0f477d60517e6e6a0f6d9a7e9af8630e"
    assert result.detailed_status_code == 21010 and result.sms_units is None
    fake.answer(
        Reply(body=example("static_bulk_partial_207.xml"), status=207, content_type="text/xml")
    )
    bulk = client.send_bulk(["555", "XXXXX30241"], "Hello World!", "S")
    assert bulk.partial and [r.accepted for r in bulk.results] == [False, True]


def test_get_message(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(body=example("details_response.json")))
    result = client.get_message("0f477d60517e6e6a0f6d9a7e9af8630e")
    (seen,) = fake.seen
    assert seen.method == "GET" and seen.body == b""
    assert seen.path == "/v1/Accounts/acme1/SMS/Messages/0f477d60517e6e6a0f6d9a7e9af8630e.json"
    assert result is not None and result.status == "submitted" and result.sms_units == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=rest_exception(200, "No matching results")),
        Reply(body="No matching results", content_type="text/plain"),
        Reply(
            body="<TwilioResponse><RestException><Status>200</Status>"
            "<Message>No matching results</Message></RestException></TwilioResponse>",
            content_type="application/xml",
        ),
        Reply(status=404, body=rest_exception(404, "No matching results")),
        Reply(body='{"SMSMessage": {}}'),
    ],
)
def test_get_message_no_match(fake: FakeExotel, client: ExotelClient, reply: Reply) -> None:
    fake.answer(reply)
    assert client.get_message("unknown") is None


def test_get_message_body_mentioning_no_match_is_still_a_message(
    fake: FakeExotel, client: ExotelClient
) -> None:
    body = json.loads(example("details_response.json"))
    body["SMSMessage"]["Body"] = "No matching results for your search"
    fake.answer(Reply(body=json.dumps(body)))
    result = client.get_message("0f477d60517e6e6a0f6d9a7e9af8630e")
    assert result is not None and result.body == "No matching results for your search"


def test_get_message_errors_still_raise(fake: FakeExotel, client: ExotelClient) -> None:
    fake.answer(Reply(status=429, body=rest_exception(429, "Too many GET requests.", 40403)))
    with pytest.raises(ExotelThrottled) as info:
        client.get_message("x")
    assert info.value.context["method"] == "GET"


# --------------------------------------------------------------------------- secrets, logs


def test_no_secret_anywhere_for_failing_calls(
    fake: FakeExotel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ExotelError] = []
    body = "OTP 482913 for secret login"

    refused = ExotelClient(SID, API_KEY, TOKEN, base_url=f"http://127.0.0.1:{closed_port()}")
    slow = ExotelClient(SID, API_KEY, TOKEN, base_url=fake.url, timeout=(2.0, 0.2))
    client = ExotelClient(SID, API_KEY, TOKEN, base_url=fake.url)
    replies = [
        Reply(status=401, body=rest_exception(401, "Unauthorized;", 34010)),
        Reply(status=200, body="{not json"),
        Reply(close=True),
        Reply(delay=3.0),
    ]
    for c, reply in [(refused, None), *[(client, r) for r in replies[:3]], (slow, replies[3])]:
        if reply is not None:
            fake.answer(reply)
        with pytest.raises(ExotelError) as info:
            c.send("9876543210", body, "S")
        errors.append(info.value)

    assert [type(e).__name__ for e in errors] == [
        "ExotelConnectionError",
        "ExotelAuthError",
        "ExotelResponseError",
        "ExotelOutcomeUnknown",
        "ExotelReadTimeout",
    ]
    for exc in errors:
        assert_no_secret(str(exc), repr(exc), repr(exc.args), repr(vars(exc)))
        assert exc.__cause__ is None
        assert_no_secret(repr(pickle.loads(pickle.dumps(exc)).__dict__))
    for c in (refused, slow, client):
        assert repr(c) == f"<ExotelClient account_sid='acme1' host='{c.host}'>"
        assert_no_secret(repr(c))
        assert API_KEY not in repr(c)
    assert_no_secret(caplog.text)
    assert body not in caplog.text  # message bodies are never logged
    for c in (refused, slow, client):
        c.close()


def test_debug_log_line(
    fake: FakeExotel, client: ExotelClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="django_exotel_sms.client")
    fake.answer(Reply(body=example("static_bulk_response.json")))
    client.send_bulk(["1", "2"], "Secret text", "S")
    records = [r for r in caplog.records if r.name == "django_exotel_sms.client"]
    assert len(records) == 1 and records[0].levelno == logging.DEBUG
    line = records[0].getMessage()
    assert "POST /v1/Accounts/acme1/Sms/send.json -> HTTP 200" in line
    assert "ms (2 recipients)" in line
    assert "Secret text" not in caplog.text


# --------------------------------------------------------------------------- construction


def test_urls_and_credentials_validation() -> None:
    assert ExotelClient(SID, API_KEY, TOKEN).base_url == "https://api.exotel.com"
    mumbai = ExotelClient(SID, API_KEY, TOKEN, subdomain="@api.in.exotel.com")
    assert mumbai.base_url == "https://api.in.exotel.com"
    local = ExotelClient(SID, API_KEY, TOKEN, base_url="http://localhost:8000/exotel/", timeout=3)
    assert local.base_url == "http://localhost:8000/exotel" and local.timeout == (3.0, 3.0)
    for kwargs in (
        {"base_url": f"https://{API_KEY}:{TOKEN}@api.exotel.com"},
        {"subdomain": f"{API_KEY}:{TOKEN}@api.exotel.com"},
        {"subdomain": "https://api.exotel.com"},
        {"base_url": "api.exotel.com"},
        {"timeout": (1.0, 0)},
    ):
        with pytest.raises(ExotelRequestError) as info:
            ExotelClient(SID, API_KEY, TOKEN, **kwargs)
        assert_no_secret(str(info.value))
        assert API_KEY not in str(info.value)
    with pytest.raises(ExotelRequestError):
        ExotelClient(SID, API_KEY, "")


def test_from_settings_reads_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    requested: list[str | None] = []

    def get_account(alias: str | None = None) -> Any:
        requested.append(alias)
        return types.SimpleNamespace(
            account_sid="acc9",
            api_key=API_KEY,
            api_token=TOKEN,
            subdomain="api.in.exotel.com",
            base_url=None,
            connect_timeout=1.5,
            read_timeout=12.0,
        )

    stub = types.ModuleType("django_exotel_sms.conf")
    stub.get_account = get_account  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "django_exotel_sms.conf", stub)
    client = ExotelClient.from_settings("india")
    assert requested == ["india"]
    assert client.account_sid == "acc9" and client.base_url == "https://api.in.exotel.com"
    assert client.timeout == (1.5, 12.0)


def test_pooled_session_and_close(fake: FakeExotel) -> None:
    client = ExotelClient(SID, API_KEY, TOKEN, base_url=fake.url)
    adapter = client._session.get_adapter(fake.url)
    assert adapter._pool_maxsize == 10  # type: ignore[attr-defined]
    for _ in range(3):
        client.send("9", "b", "S")
    assert len(fake.seen) == 3
    with client:
        pass  # __exit__ closes the session
