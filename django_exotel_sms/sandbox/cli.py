"""Command-line options shared by ``python -m django_exotel_sms.sandbox`` and the
``exotel_sandbox`` management command."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .faults import Faults
from .outcomes import OUTCOMES, Rule
from .server import SandboxListenError, SandboxServer

__all__ = [
    "SANDBOX_ACCOUNT_SID",
    "SANDBOX_API_KEY",
    "SANDBOX_API_TOKEN",
    "add_arguments",
    "main",
    "run",
    "server_from_options",
]

_DEFAULTS = Faults()
# option -> (Faults field, help)
_FAULT_OPTIONS: dict[str, tuple[str, str]] = {
    "--throttle-rate": ("throttle_rate", "fraction of POSTs answered 429 / 40402"),
    "--get-throttle-rate": ("get_throttle_rate", "fraction of GETs answered 429 / 40403"),
    "--unavailable-rate": ("unavailable_rate", "fraction answered 503 / 40405"),
    "--server-error-rate": ("server_error_rate", "fraction answered 500 / 35000"),
    "--latency": ("latency", "seconds added to every API request"),
    "--latency-jitter": ("latency_jitter", "plus up to this many seconds, at random"),
    "--hang-rate": ("hang_rate", "fraction of sends accepted but answered too late"),
    "--hang-seconds": ("hang_seconds", "how late those answers come"),
    "--retry-after": ("retry_after", "Retry-After seconds on 429"),
    "--callback-drop-rate": ("callback_drop_rate", "fraction of callbacks never posted"),
    "--callback-duplicate-rate": ("callback_duplicate_rate", "fraction posted twice"),
    "--callback-retry-delay": ("callback_retry_delay", "seconds between callback retries"),
}


# The stand-in's own published credentials. It never defaults to a project's: those may be
# real Exotel credentials, and the banner below would print them.
SANDBOX_ACCOUNT_SID = "sandbox"
SANDBOX_API_KEY = "sandboxkey"
SANDBOX_API_TOKEN = "sandboxtoken"  # a published test value, not a secret


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--account-sid", default=SANDBOX_ACCOUNT_SID)
    parser.add_argument(
        "--api-key", default=SANDBOX_API_KEY, help=f"default {SANDBOX_API_KEY}; never printed"
    )
    parser.add_argument(
        "--api-token",
        default=SANDBOX_API_TOKEN,
        help=f"default {SANDBOX_API_TOKEN}; never printed",
    )
    parser.add_argument(
        "--callback-delay",
        type=float,
        default=_DEFAULTS.callback_delay,
        help="seconds from acceptance to the final state and its StatusCallback",
    )
    for option, (name, text) in _FAULT_OPTIONS.items():
        default = getattr(_DEFAULTS, name)
        parser.add_argument(option, dest=name, type=float, default=default, help=text)
    parser.add_argument(
        "--callback-reorder",
        type=float,
        nargs="?",
        const=1.0,
        default=0.0,
        help="post a stale 'submitted' callback after the terminal one (rate; bare = always)",
    )
    parser.add_argument("--callback-retries", type=int, default=_DEFAULTS.callback_retries)
    parser.add_argument("--callback-workers", type=int, default=8)
    parser.add_argument(
        "--default-outcome", default=_DEFAULTS.default_outcome, help="outcome when no rule matches"
    )
    parser.add_argument("--seed", type=int, default=None, help="make random faults repeatable")
    parser.add_argument(
        "--rule",
        dest="rules",
        action="append",
        default=[],
        metavar="PATTERN=OUTCOME",
        help=f"e.g. '+9199999*=dnd'; outcomes: {', '.join(OUTCOMES)}, failed:<code>, "
        "unknown:<code>; first match wins",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def server_from_options(options: Mapping[str, Any]) -> SandboxServer:
    faults = {name: options[name] for name, _ in _FAULT_OPTIONS.values() if name in options}
    for name in ("callback_reorder", "callback_retries", "default_outcome"):
        if name in options:
            faults[name] = options[name]
    return SandboxServer(
        host=options["host"],
        port=options["port"],
        account_sid=options["account_sid"],
        api_key=options["api_key"],
        api_token=options["api_token"],
        callback_delay=options["callback_delay"],
        seed=options.get("seed"),
        rules=[Rule.parse(r) for r in options.get("rules") or []],
        verbose=bool(options.get("verbose")),
        callback_workers=int(options.get("callback_workers") or 8),
        **faults,
    )


def _print_line(line: str) -> None:
    print(line, flush=True)


def _shown(value: str, published: str, option: str) -> str:
    """The published test value is printed; anything given on the command line is not."""
    return value if value == published else f"(as given with {option}; not shown)"


def run(server: SandboxServer, say: Callable[[str], object] = _print_line) -> None:
    """Serve until Ctrl-C or SIGTERM; ``say`` writes one line (e.g. a command's stdout)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    for line in (
        f"Exotel SMS sandbox listening on {server.url}",
        f"  BASE_URL    = {server.url}",
        f"  ACCOUNT_SID = {server.account_sid}",
        f"  API_KEY     = {_shown(server.api_key, SANDBOX_API_KEY, '--api-key')}",
        f"  API_TOKEN   = {_shown(server.api_token, SANDBOX_API_TOKEN, '--api-token')}",
        f"  controls    : {server.url}/_sandbox/ (requests, messages, config, rules, reset)",
        "Ctrl-C stops.",
    ):
        say(line)
    sys.stdout.flush()  # piped output (tests, supervisors) must see the banner now
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        say("Sandbox stopped.")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_exotel_sms.sandbox",
        description="A local stand-in for the Exotel SMS API.",
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        server = server_from_options(options)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        run(server)
    except SandboxListenError as exc:  # a busy port: one clear line, not a traceback
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0
