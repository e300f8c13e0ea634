"""The HTTP side: ``SandboxServer``, the Exotel endpoints, and ``/_sandbox/`` controls."""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hmac
import json
import math
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from .api import ApiError, Draft, SendRequest, error, form_recipients, parse_bulksend, parse_send
from .callbacks import Delivery, Dispatcher, PostSettings
from .faults import Dice, Faults
from .outcomes import Outcome, Rule, RuleBook, parse_outcome
from .phones import sms_units
from .render import Fields, error_body, message_fields, messages_body, rejected_fields
from .store import (
    DATE_SENT_PLACEHOLDER,
    CallbackAttempt,
    RecordedRequest,
    Store,
    StoredMessage,
    exotel_now,
)

__all__ = ["SandboxListenError", "SandboxServer"]

MAX_BODY_LENGTH = 2000
_TOO_LONG = parse_outcome("failed:23070")  # documented fate of bodies over 2000 characters
_DETAILED_NAMES = {23000: "FAILED_MISSING_BODY", 23010: "FAILED_INVALID_DESTINATION_NUMBER"}
_JSON = "application/json"
_XML = "application/xml; charset=utf-8"
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(data: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(data).encode())


class SandboxListenError(OSError):
    """The sandbox could not listen on its host and port (in use, not allowed, no such
    address); the message says which and what to do."""

    @classmethod
    def from_os_error(cls, exc: OSError, host: str, port: int) -> SandboxListenError:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            hint = "another program (perhaps another sandbox) uses it; stop that, or pick "
            hint += "another port (port 0 picks a free one)"
        elif exc.errno == errno.EACCES:
            hint = "ports below 1024 need privileges; pick a port above 1024"
        else:
            hint = "check the host and port"
        error = cls(f"Cannot listen on {host}:{port}: {reason}; {hint}.")
        error.errno = exc.errno
        return error


class SandboxServer:
    """A local Exotel SMS API that honours the documented contract, for tests and demos.

    ``port=0`` picks a free port; ``url`` is the BASE_URL to give the client once started.
    Extra keyword arguments are fault settings (see ``Faults``); ``rules`` are
    ``Rule``/``"pattern=outcome"`` values choosing each recipient's fate.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        account_sid: str = "sandbox",
        api_key: str = "sandboxkey",
        api_token: str = "sandboxtoken",  # noqa: S107 - the sandbox's published test token
        callback_delay: float = 0.5,
        seed: int | None = None,
        *,
        rules: Iterable[object] = (),
        verbose: bool = False,
        callback_workers: int = 8,
        callback_queue_size: int = 10_000,
        **faults: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.account_sid = account_sid
        self.api_key = api_key
        self.api_token = api_token
        self.seed = seed
        self.verbose = verbose
        self._initial_faults = Faults().updated(callback_delay=callback_delay, **faults)
        self._faults = self._initial_faults
        self._initial_rules = [Rule.coerce(r) for r in rules]
        self._rules = RuleBook(self._initial_rules)
        self._dice = Dice(seed)
        self._store = Store()
        self._dispatcher = Dispatcher(
            self._finish,
            self._store.record_callback,
            self._post_settings,
            workers=callback_workers,
            queue_size=callback_queue_size,
        )
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        try:
            self._httpd = _HTTPServer((self.host, self.port), self)
        except OSError as exc:
            raise SandboxListenError.from_os_error(exc, self.host, self.port) from exc
        self.port = int(self._httpd.server_address[1])
        self._dispatcher.start()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="exotel-sandbox-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()  # keep-alive clients must not reach a stopped sandbox
        if self._thread is not None:
            self._thread.join(5)
        self._dispatcher.stop()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("start() the sandbox before asking for its url")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # -- inspection and control ---------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        return self._store.requests()

    @property
    def callbacks(self) -> list[CallbackAttempt]:
        """Every StatusCallback attempt (and drop), in the order they happened."""
        return self._store.callbacks()

    @property
    def messages(self) -> dict[str, StoredMessage]:
        """Accepted messages by Sid (copies)."""
        return self._store.messages()

    def message(self, sid: str) -> StoredMessage | None:
        return self._store.get(sid)

    def recipient_counts(self) -> Counter[str]:
        """Normalised number -> how many times it was accepted (given a Sid)."""
        return self._store.counts()

    @property
    def faults(self) -> Faults:
        return self._faults

    def configure(self, **faults: Any) -> Faults:
        """Change fault settings (``throttle_rate=0.1``...); ``seed=N`` re-seeds the dice."""
        if "seed" in faults:
            seed = faults.pop("seed")
            self._dice = Dice(None if seed is None else int(seed))
        self._faults = self._faults.updated(**faults)
        return self._faults

    @property
    def rules(self) -> list[Rule]:
        return self._rules.snapshot()

    def add_rule(self, pattern: str | Rule, outcome: str | None = None) -> Rule:
        """Append a rule: ``add_rule("+9199999*", "dnd")`` or ``add_rule("+9199999*=dnd")``."""
        rule = Rule.coerce(pattern if outcome is None else Rule(str(pattern), outcome))
        self._rules.add(rule)
        return rule

    def set_outcome(self, number: str, outcome: str) -> Rule:
        """Fix one number's fate, ahead of every other rule."""
        rule = Rule(number, outcome)
        self._rules.add(rule, first=True)
        return rule

    def set_rules(self, rules: Iterable[object]) -> None:
        self._rules.replace(rules)

    def reset(self) -> None:
        """Forget messages, logs and pending callbacks; restore the initial faults and rules."""
        self._dispatcher.clear()
        self._store.clear()
        self._faults = self._initial_faults
        self._rules.replace(self._initial_rules)
        self._dice = Dice(self.seed)

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled state change and callback is done; False on timeout."""
        return self._dispatcher.wait(timeout)

    # -- request handling (called from handler threads) ---------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one HTTP request; API traffic is logged, ``/_sandbox/`` controls are not."""
        received = time.time()
        split = urlsplit(target)
        path, query = split.path or "/", split.query
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            return self._control(method, path, query, body)
        form: list[tuple[str, str]] = []
        if body:
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        lowered = {k.lower(): v for k, v in headers.items()}
        reply, authorized, hang = self._api(method, path, form, lowered)
        self._store.record_request(
            RecordedRequest(
                time=received,
                method=method,
                path=self._redact(path),
                query=self._redact(query),
                form=[(self._redact(k), self._redact(v)) for k, v in form],
                status=reply.status,
                recipients=form_recipients(form),
                authorized=authorized,
                headers={
                    k: self._redact(v)
                    for k, v in headers.items()
                    if k.lower() not in _SECRET_HEADERS
                },
            )
        )
        if hang > 0:
            time.sleep(hang)  # accepted, but the answer arrives after the client gave up
        return reply

    def _redact(self, text: str) -> str:
        token = self.api_token
        return text.replace(token, "***") if len(token) >= 4 and token in text else text

    def _api(
        self, method: str, path: str, form: list[tuple[str, str]], headers: Mapping[str, str]
    ) -> tuple[Reply, bool, float]:
        as_json = path.endswith(".json")
        if as_json:
            path = path[: -len(".json")]
        parts = path.rstrip("/").split("/")

        def fail(problem: ApiError, extra: dict[str, str] | None = None) -> Reply:
            body = error_body(problem.http_status, problem.code, problem.message, as_json=as_json)
            return Reply(problem.http_status, body, _JSON if as_json else _XML, extra or {})

        if len(parts) < 3 or parts[2] != "Accounts":
            return fail(ApiError(400, None, "/Accounts/ missing from URL")), False, 0.0
        if parts[1] != "v1":
            message = f"Exotel API Version {parts[1]} not supported. Contact Exotel for details."
            return fail(ApiError(400, None, message)), False, 0.0
        problem = self._check_auth(headers.get("authorization"))
        if problem is not None:
            extra = {"WWW-Authenticate": 'Basic realm="Exotel"'} if problem.code is None else {}
            return fail(problem, extra), False, 0.0
        if len(parts) < 4 or parts[3] != self.account_sid:
            return fail(error(34009)), True, 0.0

        faults = self._faults
        delay = faults.latency + self._dice.jitter(faults.latency_jitter)
        if delay > 0:
            time.sleep(delay)
        throttle_rate = faults.get_throttle_rate if method == "GET" else faults.throttle_rate
        if self._dice.chance(throttle_rate):
            retry_after = {"Retry-After": str(math.ceil(faults.retry_after))}
            return fail(error(40403 if method == "GET" else 40402), retry_after), True, 0.0
        if self._dice.chance(faults.unavailable_rate):
            return fail(error(40405)), True, 0.0
        if self._dice.chance(faults.server_error_rate):
            return fail(error(35000)), True, 0.0

        route = [p.lower() for p in parts[4:]]
        if method == "GET":
            if len(route) == 3 and route[:2] == ["sms", "messages"]:
                return self._details(parts[6], as_json), True, 0.0
            return fail(error(40500 if route == ["sms"] else 40501)), True, 0.0
        if method != "POST" or route not in (["sms", "send"], ["sms", "bulksend"]):
            return fail(error(40500 if route == ["sms"] else 40502)), True, 0.0
        parsed = parse_send(form) if route[1] == "send" else parse_bulksend(form)
        if isinstance(parsed, ApiError):
            return fail(parsed), True, 0.0
        outcome = self._accept(parsed, faults, as_json)
        if isinstance(outcome, ApiError):
            return fail(outcome), True, 0.0
        entries, any_rejected = outcome
        hang = faults.hang_seconds if self._dice.chance(faults.hang_rate) else 0.0
        body = messages_body(entries, as_json=as_json, as_list=parsed.as_list)
        return Reply(207 if any_rejected else 200, body, _JSON if as_json else _XML), True, hang

    def _check_auth(self, header: str | None) -> ApiError | None:
        missing = ApiError(401, None, "Authentication is required to view this page.")
        scheme, _, value = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return missing
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return missing
        key, sep, token = decoded.partition(":")
        if not (sep and key and token):
            return missing
        key_ok = hmac.compare_digest(key.encode(), self.api_key.encode())
        token_ok = hmac.compare_digest(token.encode(), self.api_token.encode())
        if key_ok and token_ok:
            return None  # the configured pair is accepted whatever characters it uses
        if not all(s.isascii() and s.isalnum() for s in (key, token)):
            return error(34001)
        return error(34010)

    def _accept(
        self, request: SendRequest, faults: Faults, as_json: bool
    ) -> tuple[list[Fields], bool] | ApiError:
        created = exotel_now()
        now = time.time()
        plan: list[StoredMessage | tuple[Draft, int]] = []
        fresh: list[StoredMessage] = []
        for draft in request.drafts:
            code = draft.reject_code
            outcome: Outcome | None = None
            if code is None and draft.number is not None:
                outcome = self._rules.outcome_for(draft.number.normalised, faults.default_outcome)
                if outcome.rejected:
                    code = 23010
            if code is not None or outcome is None or draft.number is None:
                plan.append((draft, code or 23010))
                continue
            if len(draft.body) > MAX_BODY_LENGTH:
                outcome = _TOO_LONG
            message = self._new_message(draft, request, outcome, created, now)
            plan.append(message)
            fresh.append(message)
        rejected = [entry for entry in plan if isinstance(entry, tuple)]
        if not fresh:
            if request.dynamic and all(code == 23000 for _, code in rejected):
                return error(40201)
            return error(40203, numbers=", ".join(d.to or "" for d, _ in rejected))
        for message in fresh:  # drawn here, in request order, so a seed reproduces them
            if message.status_callback and message.final_status in ("sent", "failed", "failed-dnd"):
                message.drop_callback = self._dice.chance(faults.callback_drop_rate)
                message.duplicate_callback = self._dice.chance(faults.callback_duplicate_rate)
                message.reorder_callback = self._dice.chance(faults.callback_reorder)
        self._store.add_messages(fresh)
        code_as_str = not request.as_list  # as in the documented examples
        entries: list[Fields] = []
        for entry in plan:
            if isinstance(entry, StoredMessage):
                entries.append(message_fields(entry, as_json=as_json, code_as_str=code_as_str))
                continue
            draft, code = entry
            entries.append(
                rejected_fields(
                    self.account_sid,
                    to=draft.number.echo if code == 23000 and draft.number else None,
                    body=draft.body,
                    code=code,
                    detailed_status=_DETAILED_NAMES[code],
                )
            )
        # Only now: the answer shows each message as accepted, never a final state that a
        # short callback_delay reached while a long answer was still being built.
        due = now + faults.callback_delay
        for message in fresh:
            self._dispatcher.schedule_transition(message.sid, due)
        return entries, bool(rejected)

    def _new_message(
        self, draft: Draft, request: SendRequest, outcome: Outcome, created: str, now: float
    ) -> StoredMessage:
        assert draft.number is not None and draft.number.echo is not None
        return StoredMessage(
            sid=uuid.uuid4().hex,
            account_sid=self.account_sid,
            from_=draft.from_,
            to=draft.number.echo,
            number=draft.number.normalised,
            body=draft.body,
            encoding=request.encoding,
            sms_type=draft.sms_type,
            dlt_template_id=draft.dlt_template_id,
            dlt_entity_id=request.dlt_entity_id,
            custom_field=request.custom_field,
            status_callback=request.status_callback,
            priority=request.priority,
            date_created=created,
            date_updated=created,
            accepted_at=now,
            outcome=outcome.name,
            final_status=outcome.status,
            final_code=outcome.code,
            final_detailed_status=outcome.detailed_status,
            units=sms_units(draft.body, request.encoding),
        )

    def _details(self, sid: str, as_json: bool) -> Reply:
        message = self._store.get(sid)
        content_type = _JSON if as_json else _XML
        if message is None:  # documented: HTTP 200, no code, "No matching results"
            return Reply(
                200, error_body(200, None, "No matching results", as_json=as_json), content_type
            )
        fields = message_fields(message, as_json=as_json, code_as_str=True)
        return Reply(200, messages_body([fields], as_json=as_json, as_list=False), content_type)

    # -- scheduled work -----------------------------------------------------------------
    def _post_settings(self) -> PostSettings:
        faults = self._faults
        return PostSettings(
            faults.callback_retries, faults.callback_retry_delay, faults.callback_timeout
        )

    def _finish(self, sid: str) -> list[Delivery]:
        message = self._store.finish(sid)
        if message is None or not message.status_callback:
            return []
        if message.status not in ("sent", "failed", "failed-dnd"):
            return []  # "stuck": Exotel calls back only on a terminal state
        url = message.status_callback
        form = _callback_form(message)
        if message.drop_callback:
            self._store.record_callback(
                CallbackAttempt(time.time(), sid, url, list(form), "dropped", 0)
            )
            return []
        followups = []
        if message.duplicate_callback:
            followups.append(Delivery(sid, url, form, "duplicate"))
        if message.reorder_callback:
            stale = _callback_form(
                message, status=("submitted", 21020, "PENDING_ON_OPERATOR", DATE_SENT_PLACEHOLDER)
            )
            followups.append(Delivery(sid, url, stale, "stale"))
        return [Delivery(sid, url, form, "terminal", followups=tuple(followups))]

    # -- control endpoints --------------------------------------------------------------
    def _control_index(self) -> dict[str, Any]:
        # What a person opening the printed /_sandbox/ URL in a browser sees.
        base = f"{self.url}/_sandbox"
        return {
            "sandbox": "local Exotel SMS API stand-in",
            "account_sid": self.account_sid,
            "api": f"{self.url}/v1/Accounts/{self.account_sid}/Sms/send.json",
            "controls": [
                {"method": method, "url": f"{base}/{name}", "does": does}
                for method, name, does in _CONTROLS
            ],
        }

    def _control(self, method: str, path: str, query: str, body: bytes) -> Reply:
        name = path[len("/_sandbox") :].strip("/")
        params = parse_qs(query)
        since = int(params.get("since", ["0"])[0])
        try:
            payload: Any = json.loads(body) if body.strip() else None
            if method == "GET":
                if name == "":
                    return _json_reply(self._control_index())
                if name == "health":
                    return _json_reply({"ok": True, "account_sid": self.account_sid})
                if name == "requests":
                    return _json_reply([r.as_dict() for r in self._store.requests(since)])
                if name == "callbacks":
                    return _json_reply([c.as_dict() for c in self._store.callbacks(since)])
                if name == "recipients":
                    return _json_reply(dict(self.recipient_counts()))
                if name == "messages":
                    return _json_reply(self._store.summaries())
                if name == "config":
                    return _json_reply(self._faults.as_dict())
                if name == "rules":
                    return _json_reply([r.as_dict() for r in self.rules])
                if name == "wait":
                    timeout = float(params.get("timeout", ["10"])[0])
                    done = self.wait_for_callbacks(timeout)
                    return _json_reply({"done": done, "pending": self._dispatcher.pending})
            elif method == "POST":
                if name == "config":
                    return _json_reply(self.configure(**(payload or {})).as_dict())
                if name == "rules":
                    append = isinstance(payload, dict) and bool(payload.get("append"))
                    rules = payload.get("rules", []) if isinstance(payload, dict) else payload
                    parsed = [Rule.coerce(r) for r in rules or []]
                    if append:
                        for rule in parsed:
                            self._rules.add(rule)
                    else:
                        self._rules.replace(parsed)
                    return _json_reply([r.as_dict() for r in self.rules])
                if name == "outcome":
                    self.set_outcome(str(payload["number"]), str(payload["outcome"]))
                    return _json_reply([r.as_dict() for r in self.rules])
                if name == "reset":
                    self.reset()
                    return _json_reply({"ok": True})
        except (ValueError, TypeError, KeyError) as exc:
            return _json_reply({"error": str(exc)}, 400)
        return _json_reply({"error": f"no control endpoint {method} {path}"}, 404)


_CONTROLS = [
    ("GET", "health", "is the sandbox up, and its account sid"),
    ("GET", "requests", "API requests received (credentials redacted); ?since=N"),
    ("GET", "callbacks", "status callbacks posted, with their answers; ?since=N"),
    ("GET", "recipients", "how many times each number was sent to"),
    ("GET", "messages", "every message with its current status"),
    ("GET", "config", "the fault settings"),
    ("GET", "rules", "the outcome rules"),
    ("GET", "wait", "block until scheduled callbacks are done; ?timeout=S"),
    ("POST", "config", "change fault settings (JSON object)"),
    ("POST", "rules", "replace (or append) the outcome rules"),
    ("POST", "outcome", 'one number\'s outcome: {"number": ..., "outcome": ...}'),
    ("POST", "reset", "forget messages, requests, rules and faults"),
]


def _callback_form(
    message: StoredMessage, status: tuple[str, int, str, str] | None = None
) -> tuple[tuple[str, str], ...]:
    word, code, detailed, date_sent = status or (
        message.status,
        message.detailed_status_code,
        message.detailed_status,
        message.date_sent or DATE_SENT_PLACEHOLDER,
    )
    form = [
        ("SmsSid", message.sid),
        ("To", message.to),
        ("Status", word),
        ("SmsUnits", str(message.sms_units if message.sms_units is not None else message.units)),
        ("DetailedStatus", detailed),
        ("DetailedStatusCode", str(code)),
        ("DateSent", date_sent),
    ]
    if message.custom_field is not None:
        form.append(("CustomField", message.custom_field))
    return tuple(form)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: pooled clients reuse connections
    server_version = "ExotelSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body are separate writes
    timeout = 120  # idle keep-alive connections are eventually closed
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        sandbox = self.server.sandbox
        try:
            body = self._read_body()
            reply = sandbox.handle(self.command, self.path, dict(self.headers.items()), body)
        except (ValueError, OSError):
            self.close_connection = True
            reply = Reply(400, error_body(400, None, "Malformed request", as_json=True))
        except Exception:  # a sandbox bug: answer like Exotel would, and say so loudly
            traceback.print_exc(file=sys.stderr)
            reply = Reply(500, error_body(500, 40100, "Error Processing Request", as_json=True))
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. after a hang)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts of bulk requests must not be refused

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
