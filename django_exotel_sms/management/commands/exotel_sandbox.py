"""``manage.py exotel_sandbox``: run the local Exotel stand-in.

It runs with its own published credentials (``sandboxkey`` / ``sandboxtoken``), never the
project's: those may be real Exotel credentials, and a stand-in has no use for them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_exotel_sms.sandbox.cli import add_arguments, run, server_from_options
from django_exotel_sms.sandbox.server import SandboxListenError


class Command(BaseCommand):
    help = (
        "Run a local Exotel SMS API sandbox with its own test credentials "
        "(sandbox / sandboxkey / sandboxtoken unless given)."
    )
    requires_system_checks: list[str] = []  # a test double must start even when config is off

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("verbosity", 1) >= 2:
            options["verbose"] = True
        for option, key in (("api_key", "API_KEY"), ("api_token", "API_TOKEN")):
            if options.get(option) in set(_real_credentials(key)):
                # The value itself is never echoed.
                raise CommandError(
                    f"--{option.replace('_', '-')} is this project's EXOTEL_SMS {key}, which "
                    "is used with Exotel itself. The stand-in never takes real credentials: "
                    "run it with its own (the defaults) and point a development settings file "
                    "at it (BASE_URL, ACCOUNT_SID, API_KEY and API_TOKEN as printed)."
                )
        try:
            server = server_from_options(options)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            run(server, say=self.stdout.write)
        except SandboxListenError as exc:  # a busy port: a clear error, not a traceback
            raise CommandError(str(exc)) from exc


def _real_credentials(key: str) -> Iterator[str]:
    """The project's values of ``key`` for accounts that talk to a non-local Exotel.

    Read from the settings dict directly: the sandbox must not depend on our conf module,
    which refuses to load a broken configuration.
    """
    config = getattr(settings, "EXOTEL_SMS", None)
    if not isinstance(config, dict):
        return
    accounts = config.get("ACCOUNTS")
    named = list(accounts.values()) if isinstance(accounts, dict) else []
    for account in [config, *named]:
        if not isinstance(account, dict):
            continue
        value = account.get(key)
        base_url = account.get("BASE_URL", config.get("BASE_URL"))
        if value and not _is_local(base_url):
            yield str(value)


def _is_local(url: object) -> bool:
    """True for a BASE_URL on this machine (a stand-in), False for Exotel or anything else."""
    if not isinstance(url, str) or not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
