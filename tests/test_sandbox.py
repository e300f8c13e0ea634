"""The local Exotel stand-in honours the documented contract (no Django needed).

Run alone with ``pytest -p no:django tests/test_sandbox.py``.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests

from django_exotel_sms.sandbox import (
    Faults,
    Rule,
    SandboxControl,
    SandboxListenError,
    SandboxServer,
    parse_number,
    parse_outcome,
    sms_units,
)

ROOT = Path(__file__).resolve().parent.parent
AUTH = ("sandboxkey", "sandboxtoken")
SEND = "/v1/Accounts/sandbox/Sms/send.json"
BULK = "/v1/Accounts/sandbox/Sms/bulksend.json"
SID_RE = re.compile(r"^[0-9a-f]{32}$")

# Keys of the documented SMSMessage examples (send, bulk, details).
DOC_KEYS = {
    "Sid",
    "AccountSid",
    "From",
    "To",
    "DateCreated",
    "DateUpdated",
    "DateSent",
    "Body",
    "Direction",
    "Uri",
    "ApiVersion",
    "Price",
    "Status",
    "DetailedStatusCode",
    "DetailedStatus",
    "SmsUnits",
}
CALLBACK_KEYS = [
    "SmsSid",
    "To",
    "Status",
    "SmsUnits",
    "DetailedStatus",
    "DetailedStatusCode",
    "DateSent",
]


# -- fixtures -------------------------------------------------------------------------------
class Receiver:
    """A StatusCallback endpoint: records posts; ``plan[path]`` lists statuses to answer."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, list[tuple[str, str]]]] = []
        self.plan: dict[str, collections.deque[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)
                with receiver.lock:
                    receiver.posts.append((self.path, form))
                    planned = receiver.plan.get(self.path)
                    status = planned.popleft() if planned else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, *statuses: int) -> str:
        path = f"/cb/{uuid.uuid4().hex}"
        self.plan[path] = collections.deque(statuses)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def posts_to(self, url: str) -> list[dict[str, str]]:
        path = url.split(str(self.httpd.server_address[1]), 1)[1]
        with self.lock:
            return [dict(form) for p, form in self.posts if p == path]

    def raw_posts_to(self, url: str) -> list[list[tuple[str, str]]]:
        path = url.split(str(self.httpd.server_address[1]), 1)[1]
        with self.lock:
            return [form for p, form in self.posts if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.httpd.shutdown()
    rx.httpd.server_close()


@pytest.fixture(scope="module")
def _server() -> Iterator[SandboxServer]:
    with SandboxServer(callback_delay=0.05, callback_retry_delay=0.05) as server:
        yield server


@pytest.fixture
def sandbox(_server: SandboxServer) -> Iterator[SandboxServer]:
    _server.reset()
    yield _server
    _server.wait_for_callbacks(5)


def post(sandbox: SandboxServer, path: str, data: object, **kwargs: object) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("timeout", 10)
    return requests.post(sandbox.url + path, data=data, **kwargs)  # type: ignore[arg-type]


def get(sandbox: SandboxServer, path: str, **kwargs: object) -> requests.Response:
    kwargs.setdefault("auth", AUTH)
    kwargs.setdefault("timeout", 10)
    return requests.get(sandbox.url + path, **kwargs)  # type: ignore[arg-type]


def send_one(sandbox: SandboxServer, to: str = "9876543210", **extra: str) -> dict:
    data = {"From": "08012345678", "To": to, "Body": "Hello World!", **extra}
    response = post(sandbox, SEND, data)
    assert response.status_code == 200, response.text
    return response.json()["SMSMessage"]


def details(sandbox: SandboxServer, sid: str) -> dict:
    response = get(sandbox, f"/v1/Accounts/sandbox/SMS/Messages/{sid}.json")
    assert response.status_code == 200
    return response.json()["SMSMessage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bulk_form(n: int) -> dict[str, str]:
    form = {"From": "EXOTEL"}
    for i in range(n):
        form[f"Messages[{i}][To]"] = f"98765{i:05d}"
        form[f"Messages[{i}][Body]"] = f"Hello {i}"
    return form


# -- documented errors ----------------------------------------------------------------------
OK = {"From": "08012345678", "To": "9876543210", "Body": "Hello"}
ERROR_CASES = [
    pytest.param(SEND, {"To": "9876543210", "Body": "x"}, 400, 40210, id="40210-missing-from"),
    pytest.param(SEND, {**OK, "From": ""}, 400, 40205, id="40205-empty-from"),
    pytest.param(SEND, {"From": "X", "To": "9876543210"}, 400, 40200, id="40200-missing-body"),
    pytest.param(SEND, {**OK, "Body": ""}, 400, 40200, id="40200-empty-body"),
    pytest.param(SEND, {**OK, "Body": ["a", "b"]}, 400, 40202, id="40202-repeated-body"),
    pytest.param(
        SEND, {"From": "X", "To": "9876543210", "Body[]": "a"}, 400, 40202, id="40202-body-array"
    ),
    pytest.param(
        SEND, {"From[]": "X", "To": "9876543210", "Body": "a"}, 400, 40207, id="40207-from-array"
    ),
    pytest.param(SEND, {**OK, "CustomField[]": "a"}, 400, 40207, id="40207-custom-array"),
    pytest.param(SEND, {**OK, "EncodingType": "utf8"}, 400, 40209, id="40209-encoding"),
    pytest.param(SEND, {**OK, "SmsType": "marketing"}, 400, 40204, id="40204-smstype"),
    pytest.param(SEND, {**OK, "To": "555"}, 400, 40203, id="40203-single-invalid"),
    pytest.param(SEND, {**OK, "To": None, "To[]": ["1", "abc"]}, 400, 40203, id="40203-all"),
    pytest.param(
        SEND,
        {**OK, "To": None, "To[]": [f"98765{i:05d}" for i in range(101)]},
        400,
        40406,
        id="40406-static-over-100",
    ),
    pytest.param(BULK, {"From": "X"}, 400, 40201, id="40201-no-messages"),
    pytest.param(BULK, {"Messages": "x"}, 400, 40208, id="40208-messages-scalar"),
    pytest.param(BULK, {"Messages[0]": "x"}, 400, 40208, id="40208-messages-flat"),
    pytest.param(BULK, _bulk_form(101), 400, 40400, id="40400-dynamic-over-100"),
    pytest.param(
        BULK,
        {"Messages[0][To]": "9876543210", "Messages[0][Body][]": "x"},
        400,
        40202,
        id="40202-bulk-body-array",
    ),
    pytest.param(
        BULK,
        {"Messages[0][To]": "555", "Messages[0][Body]": "x"},
        400,
        40203,
        id="40203-bulk-all-invalid",
    ),
    pytest.param(
        BULK,
        {"Messages[0][To]": "9876543210", "Messages[0][Body]": ""},
        400,
        40201,
        id="40201-bulk-all-missing-body",
    ),
    pytest.param(
        BULK,
        {**_bulk_form(1), "Messages[0][SmsType]": "x"},
        400,
        40204,
        id="40204-bulk-smstype",
    ),
    pytest.param("/v1/Accounts/sandbox/Sms/resend.json", OK, 405, 40502, id="40502-unknown-post"),
    pytest.param("/v1/Accounts/sandbox/Sms.json", OK, 400, 40500, id="40500-sms-root"),
    pytest.param("/v1/Accounts/other/Sms/send.json", OK, 403, 34009, id="34009-wrong-account"),
    pytest.param("/v1/Accounts//Sms/send.json", OK, 403, 34009, id="34009-empty-account"),
]


@pytest.mark.parametrize(("path", "data", "http", "code"), ERROR_CASES)
def test_documented_post_errors(
    sandbox: SandboxServer, path: str, data: dict, http: int, code: int
) -> None:
    data = {k: v for k, v in data.items() if v is not None}
    response = post(sandbox, path, data)
    assert response.status_code == http, response.text
    error = response.json()["RestException"]
    assert error == {"Status": http, "Code": code, "Message": error["Message"]}
    assert error["Message"]
    assert sandbox.messages == {}  # nothing was accepted


def test_all_invalid_message_lists_the_numbers(sandbox: SandboxServer) -> None:
    response = post(sandbox, SEND, {**OK, "To": ["555", "12"]})
    assert response.json()["RestException"]["Message"].endswith("invalid: 555, 12")


@pytest.mark.parametrize(
    ("path", "http", "code"),
    [
        ("/v1/Accounts/sandbox/Sms/Nope.json", 400, 40501),
        ("/v1/Accounts/sandbox/Sms.json", 400, 40500),
        ("/v1/Accounts/other/SMS/Messages/abc.json", 403, 34009),
    ],
)
def test_documented_get_errors(sandbox: SandboxServer, path: str, http: int, code: int) -> None:
    response = get(sandbox, path)
    assert response.status_code == http
    assert response.json()["RestException"]["Code"] == code


def test_path_errors_without_codes(sandbox: SandboxServer) -> None:
    response = post(sandbox, "/v1/Sms/send.json", OK)
    assert response.status_code == 400
    assert response.json() == {
        "RestException": {"Status": 400, "Message": "/Accounts/ missing from URL"}
    }
    response = post(sandbox, "/v2/Accounts/sandbox/Sms/send.json", OK)
    assert response.status_code == 400
    assert "v2 not supported" in response.json()["RestException"]["Message"]


# -- auth -----------------------------------------------------------------------------------
def test_missing_auth_is_401_without_code(sandbox: SandboxServer) -> None:
    response = post(sandbox, SEND, OK, auth=None)
    assert response.status_code == 401
    assert response.json() == {
        "RestException": {"Status": 401, "Message": "Authentication is required to view this page."}
    }
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert sandbox.requests[-1].authorized is False


@pytest.mark.parametrize(
    ("auth", "http", "code"),
    [
        (("sandboxkey", "wrongtoken"), 401, 34010),
        (("otherkey", "sandboxtoken"), 401, 34010),
        (("sandbox key!", "sandboxtoken"), 400, 34001),
        (("sandboxkey", "tok/en"), 400, 34001),
    ],
)
def test_bad_credentials(sandbox: SandboxServer, auth: tuple, http: int, code: int) -> None:
    response = post(sandbox, SEND, OK, auth=auth)
    assert response.status_code == http
    assert response.json()["RestException"]["Code"] == code
    assert sandbox.messages == {}


def test_configured_credentials_may_use_dashes() -> None:
    with SandboxServer(account_sid="acme1", api_key="my-key", api_token="my-token") as sandbox:
        response = requests.post(
            f"{sandbox.url}/v1/Accounts/acme1/Sms/send.json",
            data=OK,
            auth=("my-key", "my-token"),
            timeout=5,
        )
        assert response.status_code == 200


def test_credentials_in_url_work_and_never_reach_the_log(sandbox: SandboxServer) -> None:
    host = sandbox.url.removeprefix("http://")
    url = f"http://sandboxkey:sandboxtoken@{host}{SEND}"
    response = requests.post(url, data={**OK, "CustomField": "sandboxtoken"}, timeout=5)
    assert response.status_code == 200
    get(sandbox, "/v1/Accounts/sandbox/SMS/Messages/x.json?token=sandboxtoken")
    text = repr(sandbox.requests) + repr(SandboxControl(sandbox.url).requests())
    assert "sandboxtoken" not in text
    assert "c2FuZGJveGtleTpzYW5kYm94dG9rZW4" not in text  # base64 of key:token
    assert all("Authorization" not in r.headers for r in sandbox.requests)


# -- successful answers ---------------------------------------------------------------------
def test_single_send_shape(sandbox: SandboxServer) -> None:
    response = post(sandbox, SEND, {**OK, "To": "+91 98765-43210"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    message = response.json()["SMSMessage"]
    assert set(message) == DOC_KEYS
    assert SID_RE.match(message["Sid"])
    assert message["AccountSid"] == "sandbox"
    assert message["To"] == "09876543210"  # echoed the way Exotel's examples do
    assert message["Status"] == "queued"
    assert message["DetailedStatusCode"] == "21010"  # a string here, as documented
    assert message["DetailedStatus"] == "PENDING_TO_OPERATOR"
    assert message["Direction"] == "outbound-api"
    assert message["DateSent"] is None and message["SmsUnits"] is None
    assert message["Price"] is None and message["ApiVersion"] is None
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", message["DateCreated"])
    assert message["Uri"] == f"/v1/Accounts/sandbox/SMS/Messages/{message['Sid']}.json"
    assert sandbox.recipient_counts() == {"+919876543210": 1}


def test_international_number_is_echoed_in_e164(sandbox: SandboxServer) -> None:
    assert send_one(sandbox, "+14155550100")["To"] == "+14155550100"
    assert sandbox.recipient_counts() == {"+14155550100": 1}


def test_static_bulk_in_order(sandbox: SandboxServer) -> None:
    tos = ["9876500001", "09876500002", "+919876500003"]
    response = post(sandbox, SEND, {"From": "EXOTEL", "To[]": tos, "Body": "Hi"})
    assert response.status_code == 200
    entries = [e["SMSMessage"] for e in response.json()]
    assert [e["To"] for e in entries] == ["09876500001", "09876500002", "09876500003"]
    assert all(set(e) == DOC_KEYS for e in entries)
    assert all(e["DetailedStatusCode"] == 21010 for e in entries)  # a number in bulk answers
    assert len({e["Sid"] for e in entries}) == 3


def test_repeated_to_is_a_static_bulk(sandbox: SandboxServer) -> None:
    # requests encodes {"To": [a, b]} as To=a&To=b, as in Exotel's Python example.
    response = post(sandbox, SEND, {**OK, "To": ["9876500001", "9876500002"]})
    assert isinstance(response.json(), list) and len(response.json()) == 2


def test_static_bulk_partial_success_207(sandbox: SandboxServer) -> None:
    tos = ["555", "9876500001", "abc", "9876500002"]
    response = post(sandbox, SEND, {"From": "EXOTEL", "To[]": tos, "Body": "Hi"})
    assert response.status_code == 207
    entries = [e["SMSMessage"] for e in response.json()]
    assert [e["Sid"] is None for e in entries] == [True, False, True, False]
    for rejected in (entries[0], entries[2]):
        assert set(rejected) == DOC_KEYS
        assert rejected["Status"] == "failed"
        assert rejected["DetailedStatusCode"] == 23010
        assert rejected["DetailedStatus"] == "FAILED_INVALID_DESTINATION_NUMBER"
        assert rejected["To"] is None and rejected["Body"] == "Hi"
    assert [entries[1]["To"], entries[3]["To"]] == ["09876500001", "09876500002"]
    assert sum(sandbox.recipient_counts().values()) == 2


def test_dynamic_bulk(sandbox: SandboxServer) -> None:
    form = {
        "From": "EXOTEL",
        "Messages[1][To]": "9876500002",
        "Messages[1][Body]": "two",
        "Messages[0][To]": "9876500001",
        "Messages[0][Body]": "one",
        "Messages[0][From]": "OTHER",
        "Messages[0][SmsType]": "transactional",
        "Messages[0][DltTemplateId]": "1107",
    }
    response = post(sandbox, BULK, form)
    assert response.status_code == 200
    entries = [e["SMSMessage"] for e in response.json()]
    assert [(e["To"], e["Body"], e["From"]) for e in entries] == [
        ("09876500001", "one", "OTHER"),
        ("09876500002", "two", "EXOTEL"),
    ]
    stored = sandbox.message(entries[0]["Sid"])
    assert stored is not None
    assert (stored.sms_type, stored.dlt_template_id) == ("transactional", "1107")


def test_dynamic_bulk_partial_missing_body_and_invalid_number(sandbox: SandboxServer) -> None:
    form = {
        "Messages[0][To]": "9876500001",
        "Messages[0][Body]": "",
        "Messages[1][To]": "9876500002",
        "Messages[1][Body]": "two",
        "Messages[2][To]": "12",
        "Messages[2][Body]": "three",
    }
    response = post(sandbox, BULK, form)
    assert response.status_code == 207
    first, second, third = (e["SMSMessage"] for e in response.json())
    assert (first["Sid"], first["DetailedStatusCode"], first["DetailedStatus"]) == (
        None,
        23000,
        "FAILED_MISSING_BODY",
    )
    assert first["To"] == "09876500001" and first["Body"] == ""
    assert SID_RE.match(second["Sid"])
    assert second["From"] == "SANDBOX"  # no From anywhere: the account's default sender
    assert (third["Sid"], third["DetailedStatusCode"]) == (None, 23010)


def test_details_before_and_after_the_callback_delay(sandbox: SandboxServer) -> None:
    sandbox.configure(callback_delay=0.3)
    sid = send_one(sandbox, "9876543210", Body="x" * 161)["Sid"]
    before = details(sandbox, sid)
    assert set(before) == DOC_KEYS
    assert (before["Status"], before["DetailedStatusCode"]) == ("queued", "21010")
    assert before["SmsUnits"] is None
    assert sandbox.wait_for_callbacks(5)
    after = details(sandbox, sid)
    assert (after["Status"], after["DetailedStatusCode"]) == ("sent", "20005")
    assert after["DetailedStatus"] == "DELIVERED_TO_HANDSET"
    assert after["SmsUnits"] == 2  # 161 GSM characters
    assert after["DateSent"] is not None


def test_unknown_sid_is_200_no_matching_results(sandbox: SandboxServer) -> None:
    response = get(sandbox, "/v1/Accounts/sandbox/SMS/Messages/0123456789abcdef.json")
    assert response.status_code == 200
    assert response.json() == {"RestException": {"Status": 200, "Message": "No matching results"}}
    xml = get(sandbox, "/v1/Accounts/sandbox/SMS/Messages/0123456789abcdef")
    assert xml.status_code == 200
    root = ET.fromstring(xml.content)
    assert root.tag == "TwilioResponse"
    assert root.findtext("RestException/Message") == "No matching results"


def test_xml_answers_without_json_suffix(sandbox: SandboxServer) -> None:
    response = post(sandbox, "/v1/Accounts/sandbox/Sms/send", OK)
    assert response.status_code == 200
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(response.content)
    assert root.tag == "TwilioResponse"
    (message,) = root.findall("SMSMessage")
    assert [child.tag for child in message] == [
        "Sid",
        "AccountSid",
        "From",
        "To",
        "DateCreated",
        "DateUpdated",
        "DateSent",
        "Body",
        "Direction",
        "Uri",
        "ApiVersion",
        "Price",
        "Status",
        "DetailedStatusCode",
        "DetailedStatus",
        "SmsUnits",
    ]
    sid = message.findtext("Sid")
    assert message.findtext("Uri") == f"/v1/Accounts/sandbox/SMS/Messages/{sid}"
    assert message.find("DateSent") is not None and message.findtext("DateSent") == ""
    # Details and errors answer XML too.
    detail = ET.fromstring(get(sandbox, f"/v1/Accounts/sandbox/SMS/Messages/{sid}").content)
    assert detail.findtext("SMSMessage/Sid") == sid
    bad = post(sandbox, "/v1/Accounts/sandbox/Sms/send", {"To": "9876543210", "Body": "x"})
    error = ET.fromstring(bad.content)
    assert error.findtext("RestException/Code") == "40210"
    assert error.findtext("RestException/Status") == "400"


def test_static_bulk_xml_partial(sandbox: SandboxServer) -> None:
    response = post(
        sandbox, "/v1/Accounts/sandbox/Sms/send", {**OK, "To": None, "To[]": ["1", "9876500001"]}
    )
    assert response.status_code == 207
    entries = ET.fromstring(response.content).findall("SMSMessage")
    assert [e.findtext("Sid") for e in entries][0] == ""
    assert entries[0].findtext("DetailedStatusCode") == "23010"


def test_long_body_is_accepted_then_fails_23070(sandbox: SandboxServer) -> None:
    sid = send_one(sandbox, Body="x" * 2001)["Sid"]
    assert sandbox.wait_for_callbacks(5)
    assert details(sandbox, sid)["DetailedStatusCode"] == "23070"


# -- outcomes and callbacks -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "status", "code", "name"),
    [
        ("delivered", "sent", 20005, "DELIVERED_TO_HANDSET"),
        ("delivered_operator", "sent", 20006, "DELIVERED_TO_OPERATOR"),
        ("dnd", "failed-dnd", 23005, "FAILED_REJECTED_DND"),
        ("failed:23185", "failed", 23185, "DLT_TEMPLATE_DOES_NOT_MATCH"),
        ("failed:23035", "failed", 23035, "FAILED_SUBSCRIBER_UNAVAILABLE"),
        ("unknown:23999", "failed", 23999, "UNDOCUMENTED_23999"),
    ],
)
def test_outcome_reaches_details_and_callback(
    sandbox: SandboxServer, receiver: Receiver, outcome: str, status: str, code: int, name: str
) -> None:
    sandbox.add_rule("+9198765*", outcome)
    callback = receiver.url()
    sid = send_one(sandbox, "9876543210", StatusCallback=callback, CustomField="order-7")["Sid"]
    assert sandbox.wait_for_callbacks(5)
    found = details(sandbox, sid)
    assert (found["Status"], found["DetailedStatusCode"], found["DetailedStatus"]) == (
        status,
        str(code),
        name,
    )
    (form,) = receiver.raw_posts_to(callback)
    assert [k for k, _ in form] == [*CALLBACK_KEYS, "CustomField"]
    fields = dict(form)
    assert fields["SmsSid"] == sid
    assert fields["To"] == "09876543210"
    assert (fields["Status"], fields["DetailedStatusCode"]) == (status, str(code))
    assert fields["DetailedStatus"] == name
    assert fields["SmsUnits"] == "1"
    assert fields["CustomField"] == "order-7"
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", fields["DateSent"])


def test_callback_without_custom_field_omits_it(sandbox: SandboxServer, receiver: Receiver) -> None:
    callback = receiver.url()
    send_one(sandbox, StatusCallback=callback)
    assert sandbox.wait_for_callbacks(5)
    (form,) = receiver.raw_posts_to(callback)
    assert [k for k, _ in form] == CALLBACK_KEYS


def test_stuck_stays_submitted_without_callback(sandbox: SandboxServer, receiver: Receiver) -> None:
    sandbox.set_outcome("09876543210", "stuck")  # any spelling of the number works
    callback = receiver.url()
    sid = send_one(sandbox, "+919876543210", StatusCallback=callback)["Sid"]
    assert sandbox.wait_for_callbacks(5)
    found = details(sandbox, sid)
    assert (found["Status"], found["DetailedStatusCode"]) == ("submitted", "21020")
    assert found["DateSent"] == "1970-01-01 05:30:00"  # the documented placeholder
    assert receiver.posts_to(callback) == []


def test_invalid_outcome_is_refused_at_api_time(sandbox: SandboxServer) -> None:
    sandbox.add_rule("+9198765000*=invalid")
    response = post(sandbox, SEND, {**OK, "To": "9876500001"})
    assert (response.status_code, response.json()["RestException"]["Code"]) == (400, 40203)
    response = post(sandbox, SEND, {**OK, "To": None, "To[]": ["9876500001", "9876543210"]})
    assert response.status_code == 207
    assert response.json()[0]["SMSMessage"]["DetailedStatusCode"] == 23010
    assert sandbox.recipient_counts() == {"+919876543210": 1}


def test_rules_first_match_wins(sandbox: SandboxServer) -> None:
    sandbox.set_rules(["+91987654321*=dnd", "+9198765*=failed:23030"])
    a = send_one(sandbox, "9876543210")["Sid"]
    b = send_one(sandbox, "9876500000")["Sid"]
    c = send_one(sandbox, "9123456789")["Sid"]
    assert sandbox.wait_for_callbacks(5)
    finals = {sid: m.status for sid, m in sandbox.messages.items()}
    assert (finals[a], finals[b], finals[c]) == ("failed-dnd", "failed", "sent")


def test_callback_retries_twice_then_gives_up(sandbox: SandboxServer, receiver: Receiver) -> None:
    flaky = receiver.url(500, 503)
    dead = receiver.url(500, 500, 500, 500)
    client_error = receiver.url(404)
    for url in (flaky, dead, client_error):
        send_one(sandbox, StatusCallback=url)
    assert sandbox.wait_for_callbacks(5)
    assert len(receiver.posts_to(flaky)) == 3  # 500, 503, then 200
    assert len(receiver.posts_to(dead)) == 3  # first try + two retries
    assert len(receiver.posts_to(client_error)) == 1  # 4xx is an answer: no retry


def test_callback_to_unreachable_url_gives_up(sandbox: SandboxServer) -> None:
    url = f"http://127.0.0.1:{free_port()}/cb"
    send_one(sandbox, StatusCallback=url)
    assert sandbox.wait_for_callbacks(5)
    attempts = [a for a in sandbox.callbacks if a.url == url]
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.error for a in attempts)


def test_callback_drop(sandbox: SandboxServer, receiver: Receiver) -> None:
    sandbox.configure(callback_drop_rate=1.0)
    callback = receiver.url()
    sid = send_one(sandbox, StatusCallback=callback)["Sid"]
    assert sandbox.wait_for_callbacks(5)
    assert receiver.posts_to(callback) == []
    assert details(sandbox, sid)["Status"] == "sent"  # the details call still knows
    assert [a.kind for a in sandbox.callbacks] == ["dropped"]


def test_callback_duplicate(sandbox: SandboxServer, receiver: Receiver) -> None:
    sandbox.configure(callback_duplicate_rate=1.0)
    callback = receiver.url()
    send_one(sandbox, StatusCallback=callback)
    assert sandbox.wait_for_callbacks(5)
    posts = receiver.posts_to(callback)
    assert len(posts) == 2 and posts[0] == posts[1]


def test_callback_reorder_posts_stale_submitted_after_terminal(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(callback_reorder=True)
    sandbox.add_rule("*", "dnd")
    callback = receiver.url()
    send_one(sandbox, StatusCallback=callback)
    assert sandbox.wait_for_callbacks(5)
    posts = receiver.posts_to(callback)
    assert [(p["Status"], p["DetailedStatusCode"]) for p in posts] == [
        ("failed-dnd", "23005"),
        ("submitted", "21020"),
    ]


# -- faults ---------------------------------------------------------------------------------
def test_throttle_rate_one_is_all_429_with_retry_after(sandbox: SandboxServer) -> None:
    sandbox.configure(throttle_rate=1.0, retry_after=2)
    for _ in range(3):
        response = post(sandbox, SEND, OK)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "2"
        assert response.json()["RestException"]["Code"] == 40402
    assert sandbox.messages == {}
    assert get(sandbox, "/v1/Accounts/sandbox/SMS/Messages/x.json").status_code == 200


def test_get_throttle(sandbox: SandboxServer) -> None:
    sandbox.configure(get_throttle_rate=1.0)
    response = get(sandbox, "/v1/Accounts/sandbox/SMS/Messages/x.json")
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert response.json()["RestException"]["Code"] == 40403
    assert post(sandbox, SEND, OK).status_code == 200


@pytest.mark.parametrize(
    ("setting", "http", "code"),
    [("unavailable_rate", 503, 40405), ("server_error_rate", 500, 35000)],
)
def test_outage_faults(sandbox: SandboxServer, setting: str, http: int, code: int) -> None:
    sandbox.configure(**{setting: 1.0})
    response = post(sandbox, SEND, OK)
    assert response.status_code == http
    assert response.json()["RestException"]["Code"] == code
    assert sandbox.messages == {}


def test_seeded_faults_are_repeatable() -> None:
    def statuses(seed: int) -> list[int]:
        with SandboxServer(seed=seed, throttle_rate=0.3, unavailable_rate=0.2) as sandbox:
            url = sandbox.url + SEND
            with requests.Session() as session:
                return [session.post(url, data=OK, auth=AUTH).status_code for _ in range(40)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 429, 503} <= set(first)
    assert first != statuses(8)


def test_latency(sandbox: SandboxServer) -> None:
    sandbox.configure(latency=0.2, latency_jitter=0.05)
    started = time.monotonic()
    post(sandbox, SEND, OK)
    assert time.monotonic() - started >= 0.2


def test_hang_accepts_but_answers_too_late(sandbox: SandboxServer, receiver: Receiver) -> None:
    sandbox.configure(hang_rate=1.0, hang_seconds=1.0)
    callback = receiver.url()
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sandbox, SEND, {**OK, "StatusCallback": callback}, timeout=0.3)
    (message,) = sandbox.messages.values()
    assert message.number == "+919876543210"
    assert sandbox.wait_for_callbacks(5)
    (form,) = receiver.posts_to(callback)
    assert form["SmsSid"] == message.sid
    assert sandbox.requests[-1].status == 200


def test_configure_rejects_nonsense(sandbox: SandboxServer) -> None:
    with pytest.raises(TypeError):
        sandbox.configure(throttle=0.5)
    with pytest.raises(ValueError):
        sandbox.configure(throttle_rate=2)
    with pytest.raises(ValueError):
        sandbox.configure(default_outcome="exploded")
    with pytest.raises(ValueError):
        sandbox.add_rule("+91*", "maybe")


# -- the request log ------------------------------------------------------------------------
def test_request_log(sandbox: SandboxServer) -> None:
    post(sandbox, SEND, {**OK, "To": None, "To[]": ["09876500001", "555"]})
    post(sandbox, SEND, OK, auth=("sandboxkey", "nope"))
    first, second = sandbox.requests
    assert (first.method, first.path, first.status, first.authorized) == ("POST", SEND, 207, True)
    assert first.recipients == ["+919876500001", "555"]
    assert ("From", "08012345678") in first.form
    assert "Authorization" not in first.headers and "User-Agent" in first.headers
    assert (second.status, second.authorized) == (401, False)
    assert first.time <= second.time


# -- control endpoints ----------------------------------------------------------------------
def test_control_endpoints(sandbox: SandboxServer, receiver: Receiver) -> None:
    control = SandboxControl(sandbox.url)
    assert control.health()["ok"] is True
    control.set_rules(["+9198765000*=dnd", ["+9198765001*", "failed:23185"]])
    control.set_outcome("9876500299", "stuck")
    assert [r["outcome"] for r in control.rules()] == ["stuck", "dnd", "failed:23185"]
    assert control.configure(callback_delay=0.05)["callback_delay"] == 0.05
    callback = receiver.url()
    tos = ["9876500001", "9876500101", "9876500299", "9876500001"]
    response = post(sandbox, SEND, {**OK, "To": None, "To[]": tos, "StatusCallback": callback})
    assert response.status_code == 200
    assert control.wait_for_callbacks(5) is True
    assert control.recipients() == {"+919876500001": 2, "+919876500101": 1, "+919876500299": 1}
    finals = sorted(
        (m["number"], m["status"], m["detailed_status_code"]) for m in control.messages().values()
    )
    assert finals == [
        ("+919876500001", "failed-dnd", 23005),
        ("+919876500001", "failed-dnd", 23005),
        ("+919876500101", "failed", 23185),
        ("+919876500299", "submitted", 21020),
    ]
    assert len(control.requests()) == 1
    assert len(control.callbacks()) == 3
    control.configure(throttle_rate=1.0)
    assert post(sandbox, SEND, OK).status_code == 429
    control.reset()
    assert control.requests() == [] and control.messages() == {} and control.rules() == []
    assert control.config()["throttle_rate"] == 0.0
    assert post(sandbox, SEND, OK).status_code == 200


@pytest.mark.parametrize("path", ["/_sandbox/", "/_sandbox"])
def test_control_index_lists_working_endpoints(sandbox: SandboxServer, path: str) -> None:
    # The URL the banner and the demo print must answer, and say what is there.
    response = requests.get(f"{sandbox.url}{path}", timeout=5)
    assert response.status_code == 200
    index = response.json()
    assert index["account_sid"] == sandbox.account_sid
    listed = [c for c in index["controls"] if c["method"] == "GET"]
    assert {c["url"].rsplit("/", 1)[1] for c in listed} >= {"health", "messages", "requests"}
    for control in listed:
        if not control["url"].endswith("/wait"):
            assert requests.get(control["url"], timeout=5).status_code == 200, control
    assert "sandboxtoken" not in response.text and "sandboxkey" not in response.text


def test_control_errors(sandbox: SandboxServer) -> None:
    response = requests.post(f"{sandbox.url}/_sandbox/config", json={"bogus": 1}, timeout=5)
    assert response.status_code == 400 and "bogus" in response.json()["error"]
    assert requests.get(f"{sandbox.url}/_sandbox/nope", timeout=5).status_code == 404
    assert sandbox.requests == []  # control traffic is not logged as API traffic


# -- volume ---------------------------------------------------------------------------------
def test_many_recipients_and_callbacks(sandbox: SandboxServer, receiver: Receiver) -> None:
    callback = receiver.url()

    def send_chunk(chunk: int) -> int:
        tos = [f"98{chunk:03d}{i:05d}" for i in range(100)]
        data = {"From": "EXOTEL", "To[]": tos, "Body": "Hi", "StatusCallback": callback}
        return post(sandbox, SEND, data).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send_chunk, range(20))) == {200}
    assert sandbox.wait_for_callbacks(30)
    counts = sandbox.recipient_counts()
    assert len(counts) == 2000 and set(counts.values()) == {1}
    assert len(receiver.posts_to(callback)) == 2000
    assert threading.active_count() < 100  # a bounded pool, not a thread per callback


# -- pure helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "normalised", "echo"),
    [
        ("9876543210", "+919876543210", "09876543210"),
        ("09876543210", "+919876543210", "09876543210"),
        ("+91 98765-43210", "+919876543210", "09876543210"),
        ("919876543210", "+919876543210", "09876543210"),
        ("+14155550100", "+14155550100", "+14155550100"),
        ("555", "555", None),
        ("98765x3210", "98765x3210", None),
        ("+1234567890123456", "+1234567890123456", None),
    ],
)
def test_parse_number(raw: str, normalised: str, echo: str | None) -> None:
    number = parse_number(raw)
    assert (number.normalised, number.echo, number.valid) == (normalised, echo, echo is not None)


@pytest.mark.parametrize(
    ("body", "encoding", "units"),
    [
        ("", None, 0),
        ("a" * 160, None, 1),
        ("a" * 161, None, 2),
        ("a" * 306, None, 2),
        ("a" * 307, None, 3),
        ("[" * 80, None, 1),
        ("[" * 81, None, 2),
        ("अ" * 70, None, 1),
        ("अ" * 71, None, 2),
        ("a" * 71, "unicode", 2),
    ],
)
def test_sms_units(body: str, encoding: str | None, units: int) -> None:
    assert sms_units(body, encoding) == units


def test_outcomes_and_rules() -> None:
    assert parse_outcome("failed:23005").status == "failed-dnd"
    assert parse_outcome("failed:23999").detailed_status == "UNDOCUMENTED_23999"
    assert parse_outcome("stuck").terminal is False
    assert Rule.parse("+9199999*=dnd") == Rule("+9199999*", "dnd")
    assert Rule("09999912345", "dnd").matches("+919999912345")
    assert not Rule("+9199999*", "dnd").matches("+919888812345")
    with pytest.raises(ValueError):
        Rule.parse("no-equals-sign")
    assert Faults().updated(callback_reorder=True).callback_reorder == 1.0


# -- command line ---------------------------------------------------------------------------
def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def _read_banner(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C"):
            return "".join(lines)
    process.kill()
    raise AssertionError(
        f"no banner: {''.join(lines)} {process.stderr.read() if process.stderr else ''}"
    )


def test_cli_runs_the_sandbox() -> None:
    port = free_port()
    process = _start(
        [
            sys.executable,
            "-m",
            "django_exotel_sms.sandbox",
            "--port",
            str(port),
            "--account-sid",
            "acme",
            "--api-key",
            "given-key-1",
            "--api-token",
            "given-token-1",
            "--callback-delay",
            "0.05",
            "--rule",
            "+9198765*=dnd",
        ]
    )
    try:
        banner = _read_banner(process)
        assert f"http://127.0.0.1:{port}" in banner
        # Credentials given on the command line may be anyone's: never printed.
        assert "given-key-1" not in banner and "given-token-1" not in banner
        assert "(as given with --api-token; not shown)" in banner
        base = f"http://127.0.0.1:{port}"
        response = requests.post(
            f"{base}/v1/Accounts/acme/Sms/send.json",
            data=OK,
            auth=("given-key-1", "given-token-1"),
            timeout=5,
        )
        assert response.status_code == 200
        control = SandboxControl(base)
        assert control.wait_for_callbacks(5)
        (summary,) = control.messages().values()
        assert summary["status"] == "failed-dnd"
    finally:
        process.terminate()
        assert process.wait(10) == 0
    assert process.stdout is not None and "stopped" in process.stdout.read()


REAL = "{'ACCOUNT_SID': 'acct9', 'API_KEY': 'realkey9', 'API_TOKEN': 'realtoken9'}"


def test_management_command_never_takes_the_projects_credentials() -> None:
    port = free_port()
    script = (
        "import django, sys\n"
        "from django.conf import settings\n"
        f"settings.configure(EXOTEL_SMS={REAL})\n"
        "django.setup()\n"
        "from django_exotel_sms.management.commands.exotel_sandbox import Command\n"
        f"Command().run_from_argv(['manage.py', 'exotel_sandbox', '--port', '{port}'])\n"
    )
    process = _start([sys.executable, "-c", script])
    try:
        banner = _read_banner(process)
        assert "realkey9" not in banner and "realtoken9" not in banner
        assert "API_KEY     = sandboxkey" in banner and "API_TOKEN   = sandboxtoken" in banner
        send = f"http://127.0.0.1:{port}/v1/Accounts/sandbox/Sms/send.json"
        assert requests.post(send, data=OK, auth=AUTH, timeout=5).status_code == 200
        real = ("realkey9", "realtoken9")
        assert requests.post(send, data=OK, auth=real, timeout=5).status_code == 401
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The servers ``exotel_sandbox`` would run (they are not started)."""
    from django_exotel_sms.management.commands import exotel_sandbox

    servers: list[Any] = []
    monkeypatch.setattr(exotel_sandbox, "run", lambda server, say: servers.append(server))
    return servers


@pytest.mark.parametrize("option", ["--api-key", "--api-token"])
@pytest.mark.parametrize("base_url", [None, "https://api.in.exotel.com"])
def test_management_command_refuses_the_projects_real_credentials(
    settings: Any, served: list[Any], option: str, base_url: str | None
) -> None:
    from django.core.management import CommandError, call_command

    settings.EXOTEL_SMS = {
        "ACCOUNT_SID": "acct9",
        "API_KEY": "realkey9",
        "API_TOKEN": "realtoken9",
        **({"BASE_URL": base_url} if base_url else {}),
        "ACCOUNTS": {"promo": {"API_KEY": "promokey9", "API_TOKEN": "promotoken9"}},
    }
    for value in ("real", "promo"):
        given = f"{value}{option.removeprefix('--api-')}9"
        with pytest.raises(CommandError) as caught:
            call_command("exotel_sandbox", "--port", "0", option, given)
        assert given not in str(caught.value)
        assert "never takes real credentials" in str(caught.value)
    assert served == []


def test_management_command_takes_credentials_a_project_uses_with_a_local_stand_in(
    settings: Any, served: list[Any]
) -> None:
    """A development settings file pointing at a stand-in may use its own test values."""
    from django.core.management import call_command

    settings.EXOTEL_SMS = {
        "ACCOUNT_SID": "dev",
        "API_KEY": "devkey",
        "API_TOKEN": "devtoken",
        "BASE_URL": "http://127.0.0.1:8765",
    }
    call_command("exotel_sandbox", "--port", "0", "--api-token", "devtoken")
    call_command("exotel_sandbox", "--port", "0")
    assert [s.api_token for s in served] == ["devtoken", "sandboxtoken"]
    assert [s.api_key for s in served] == ["sandboxkey", "sandboxkey"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _assert_clear_port_error(result: subprocess.CompletedProcess[str], port: int) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "port 0 picks a free one" in result.stderr


def test_busy_port_is_a_clear_error_not_a_traceback(busy_port: int) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "django_exotel_sms.sandbox", "--port", str(busy_port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    _assert_clear_port_error(result, busy_port)
    assert result.stderr.startswith("python -m django_exotel_sms.sandbox: error:")


def test_management_command_busy_port_is_a_command_error(busy_port: int) -> None:
    script = (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure()\n"
        "django.setup()\n"
        "from django_exotel_sms.management.commands.exotel_sandbox import Command\n"
        f"Command().run_from_argv(['manage.py', 'exotel_sandbox', '--port', '{busy_port}'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    _assert_clear_port_error(result, busy_port)
    assert result.stderr.startswith("CommandError:")


def test_sandbox_server_start_raises_a_listen_error(busy_port: int) -> None:
    with pytest.raises(SandboxListenError, match="Cannot listen") as info:
        SandboxServer(port=busy_port).start()
    assert isinstance(info.value, OSError) and info.value.errno is not None


def test_sandbox_package_does_not_import_django() -> None:
    code = (
        "import sys, django_exotel_sms.sandbox, django_exotel_sms.sandbox.cli;"
        "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert result.returncode == 0
