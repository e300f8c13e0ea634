"""``manage.py exotel_sandbox``: run the local Exotel stand-in with this project's credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_exotel_sms.sandbox.cli import add_arguments, run, server_from_options
from django_exotel_sms.sandbox.server import SandboxListenError


class Command(BaseCommand):
    help = "Run a local Exotel SMS API sandbox (defaults to the EXOTEL_SMS credentials)."
    requires_system_checks: list[str] = []  # a test double must start even when config is off

    def add_arguments(self, parser: CommandParser) -> None:
        # Read the settings dict directly: the sandbox must not depend on our conf module.
        config = getattr(settings, "EXOTEL_SMS", None) or {}
        add_arguments(
            parser,
            account_sid=str(config.get("ACCOUNT_SID") or "sandbox"),
            api_key=str(config.get("API_KEY") or "sandboxkey"),
            api_token=str(config.get("API_TOKEN") or "sandboxtoken"),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("verbosity", 1) >= 2:
            options["verbose"] = True
        try:
            server = server_from_options(options)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        try:
            run(server, say=self.stdout.write)
        except SandboxListenError as exc:  # a busy port: a clear error, not a traceback
            raise CommandError(str(exc)) from exc
