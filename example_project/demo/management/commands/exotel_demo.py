"""``manage.py exotel_demo``: everything needed to watch SMS reach their final states.

Migrates, creates a demo admin user, starts the local Exotel stand-in, a Celery worker
(a real one when Redis answers, otherwise an embedded one) and the web server that
receives the stand-in's signed status callbacks; then sends a single SMS, a same-text
bulk, a per-recipient bulk and a template SMS, and prints their statuses every second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from demo import runs, scenario
from demo.services import (
    CeleryWorkerProcess,
    EmbeddedWorker,
    WebServer,
    broker_answers,
    port_answers,
    worker_env,
)
from django_exotel_sms import conf, status
from django_exotel_sms.backends import reset_backends
from django_exotel_sms.models import SmsMessage, StatusEvent
from django_exotel_sms.sandbox import SandboxServer

# The local Exotel's published test values (docs/testing.rst): not secrets.
SANDBOX_CREDENTIALS = {
    "ACCOUNT_SID": "sandbox",
    "API_KEY": "sandboxkey",
    "API_TOKEN": "sandboxtoken",
}

DEMO_USER = "demo"
SOURCE_NAMES = dict(StatusEvent.SOURCE_CHOICES)
KNOWN = [code for code, _ in status.STATUS_CHOICES]
RECONCILE_EVERY = 20.0  # seconds: the demo's stand-in for the 5-minute beat schedule


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the django-exotel-sms demo: local Exotel stand-in, Celery worker, web server, "
        "and a few hundred sends whose statuses move to their final states."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="web server address")
        parser.add_argument("--port", type=int, default=8000, help="web server port")
        parser.add_argument(
            "--sandbox-port", type=int, default=8765, help="local Exotel port (0: any free one)"
        )
        parser.add_argument(
            "--worker",
            choices=["auto", "celery", "embedded"],
            default="auto",
            help="auto: a Celery worker subprocess when Redis answers, else an embedded one",
        )
        parser.add_argument("--bulk-size", type=int, default=300)
        parser.add_argument("--dynamic-size", type=int, default=50)
        parser.add_argument(
            "--callback-delay",
            type=float,
            default=2.0,
            help="seconds the stand-in takes to deliver a message and post its callback",
        )
        parser.add_argument(
            "--timeout", type=float, default=180.0, help="seconds to wait for final states"
        )
        parser.add_argument(
            "--exit-when-done",
            action="store_true",
            help="stop once every message is final (exit 1 if some are not by --timeout)",
        )
        parser.add_argument("--admin-password", default="exotel-demo")

    # -- output --------------------------------------------------------------------------
    def say(self, text: str = "", style: Any = None) -> None:
        self.stdout.write(style(text) if style else text)
        self.stdout.flush()

    # -- the run -------------------------------------------------------------------------
    def handle(self, *args: Any, **options: Any) -> None:
        if options["bulk_size"] < 1 or options["dynamic_size"] < 1:
            raise CommandError("--bulk-size and --dynamic-size must be at least 1.")
        if port_answers(options["host"], options["port"]):
            raise CommandError(
                f"Port {options['port']} is in use: stop what runs there or pass --port."
            )
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        with contextlib.ExitStack() as stack:
            try:
                complete = self._run(stack, options)
            except KeyboardInterrupt:
                self.say("\nInterrupted; stopping.")
                complete = not options["exit_when_done"]
            finally:
                # A second Ctrl-C must not cut the clean-up short and leave a worker behind.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                self.say("Stopping the worker, the web server and the local Exotel...")
        self.say("Stopped.")
        if not complete:
            raise CommandError("Some messages did not reach a final state in time.")

    def _run(self, stack: contextlib.ExitStack[bool | None], options: dict[str, Any]) -> bool:
        self.say(self.style.MIGRATE_HEADING("django-exotel-sms demo"))
        database = settings.DATABASES["default"]
        self.say(f"Database: {str(database['ENGINE']).rsplit('.', 1)[-1]} {database['NAME']}")
        call_command("migrate", interactive=False, verbosity=0)
        self.say("Migrations applied.")
        password = options["admin_password"]
        self._admin_user(password)

        # The stand-in's own test credentials, never the project's (they may be real ones):
        # the app is pointed at the stand-in with these below.
        sandbox = SandboxServer(
            port=options["sandbox_port"],
            account_sid=SANDBOX_CREDENTIALS["ACCOUNT_SID"],
            api_key=SANDBOX_CREDENTIALS["API_KEY"],
            api_token=SANDBOX_CREDENTIALS["API_TOKEN"],
            callback_delay=options["callback_delay"],
            rules=scenario.SANDBOX_RULES,
        )
        try:
            sandbox.start()
        except OSError as exc:
            raise CommandError(
                f"Cannot start the local Exotel on port {options['sandbox_port']} ({exc}); "
                "pass --sandbox-port."
            ) from exc
        stack.callback(sandbox.stop)
        self.say(f"Local Exotel stand-in: {sandbox.url}")
        self.say(f"  outcome rules: {'; '.join(scenario.SANDBOX_RULES)}; others delivered")

        web = WebServer(options["host"], options["port"])
        try:
            web.start()
        except OSError as exc:
            raise CommandError(f"Cannot serve on port {options['port']} ({exc}).") from exc
        stack.callback(web.stop)
        self.say(f"Web server: {web.url}/ (status callbacks at {web.url}/exotel/)")

        queue = f"exotel-demo-{web.port}"
        overrides = {
            **SANDBOX_CREDENTIALS,
            "BASE_URL": sandbox.url,
            "CALLBACK_BASE_URL": f"{web.url}/exotel/",
            "TASK_QUEUE": queue,
            # Ask the stand-in about messages whose callback is 20 s late (default: 15 min).
            "RECONCILE_AFTER": 20.0,
        }
        self._apply_overrides(overrides)
        worker = self._start_worker(stack, options["worker"], queue, overrides)

        self.say("Sending...")
        first_pk = (SmsMessage.objects.order_by("-pk").values_list("pk", flat=True).first()) or 0
        runs.start(first_pk)  # the dashboard counts this run's messages, not earlier runs'
        started = time.monotonic()
        groups = scenario.send_all(options["bulk_size"], options["dynamic_size"])
        run = SmsMessage.objects.filter(pk__gt=first_pk)
        total = run.count()
        self.say(
            f"Saved {total} messages ({', '.join(g.label for g in groups)}); "
            "the worker sends them, the stand-in posts their callbacks."
        )
        complete = self._watch(run, total, worker, started, options["timeout"])
        self._summary(run, groups, total, complete, time.monotonic() - started, options)
        if options["exit_when_done"]:
            return complete
        self.say("")
        self.say(self.style.SUCCESS(f"Dashboard: {web.url}/  (this run; log in as {DEMO_USER!r})"))
        self.say(
            self.style.SUCCESS(
                f"Admin:     {web.url}/admin/  user {DEMO_USER!r}, password {password!r}"
            )
        )
        self.say(
            f"Local Exotel controls: {sandbox.url}/_sandbox/ (lists them; e.g. "
            f"{sandbox.url}/_sandbox/messages)"
        )
        self.say("Serving; Ctrl-C stops everything.")
        while True:
            time.sleep(1)
            if not worker.alive():
                self.say(self.style.ERROR("The Celery worker stopped:\n" + worker.log_tail()))
                return complete

    def _admin_user(self, password: str) -> None:
        user_model = get_user_model()
        user = user_model._default_manager.filter(username=DEMO_USER).first()
        if user is None:
            user = user_model._default_manager.create_superuser(DEMO_USER, "", password)
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save()
        self.say(f"Admin user: {DEMO_USER!r}, password {password!r}")

    def _apply_overrides(self, overrides: dict[str, Any]) -> None:
        # Here and in the worker subprocess (through EXOTEL_SMS_OVERRIDES, read by settings).
        settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, **overrides}
        conf.get_settings.cache_clear()
        reset_backends()

    def _start_worker(
        self,
        stack: contextlib.ExitStack[bool | None],
        mode: str,
        queue: str,
        overrides: dict[str, Any],
    ) -> CeleryWorkerProcess | EmbeddedWorker:
        broker = str(settings.CELERY_BROKER_URL)
        redis_up = broker_answers(broker)
        if mode == "celery" and not redis_up:
            raise CommandError(f"--worker celery needs the broker at {broker}, which is down.")
        if mode == "embedded" or not redis_up:
            why = "as asked" if mode == "embedded" else f"Redis does not answer at {broker}"
            self.say(
                self.style.WARNING(
                    f"Celery worker: EMBEDDED FALLBACK ({why}): a Celery worker thread in this "
                    "process with an in-memory broker. Start Redis for a real worker process."
                )
            )
            worker: CeleryWorkerProcess | EmbeddedWorker = EmbeddedWorker(queue)
            stack.callback(worker.stop)
            worker.start()
            return worker
        log_path = Path(tempfile.gettempdir()) / f"exotel-demo-worker-{queue}.log"
        existing = json.loads(os.environ.get("EXOTEL_SMS_OVERRIDES") or "{}")
        env = worker_env(json.dumps({**existing, **overrides}))
        worker = CeleryWorkerProcess(queue, env, log_path)
        stack.callback(worker.stop)  # before start(): Ctrl-C may come while it starts
        self.say(f"Celery worker: starting a worker subprocess on {broker} (log: {log_path})")
        try:
            worker.start()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.say(f"Celery worker ready: {worker.nodename}, queue {queue!r}")
        return worker

    # -- watching ------------------------------------------------------------------------
    @staticmethod
    def _counts(run: Any) -> Counter[str]:
        return Counter(dict(run.values_list("status").annotate(n=Count("pk")).order_by()))

    def _line(self, counts: Counter[str], total: int, elapsed: float) -> str:
        final = sum(n for s, n in counts.items() if status.is_terminal(s))
        parts = [f"{s} {counts[s]}" for s in KNOWN if counts.get(s)]
        parts += [f"{s} {n}" for s, n in counts.items() if s not in KNOWN]
        return f"[{elapsed:5.1f}s] final {final}/{total} | " + " | ".join(parts)

    def _watch(
        self,
        run: Any,
        total: int,
        worker: CeleryWorkerProcess | EmbeddedWorker,
        started: float,
        timeout: float,
    ) -> bool:
        from django_exotel_sms.reports import rollup
        from django_exotel_sms.tasks import _options, reconcile

        next_reconcile = time.monotonic() + RECONCILE_EVERY
        while True:
            counts = self._counts(run)
            elapsed = time.monotonic() - started
            self.say(self._line(counts, total, elapsed))
            final = sum(n for s, n in counts.items() if status.is_terminal(s))
            if final >= total:
                rollup.refresh()  # the admin reports show the run at once
                return True
            if elapsed >= timeout:
                return False
            if not worker.alive():
                self.say(self.style.ERROR("The Celery worker stopped:\n" + worker.log_tail()))
                return False
            if time.monotonic() >= next_reconcile:
                # What Celery beat does every 5 minutes in a real deployment.
                reconcile.apply_async(**_options())
                rollup.refresh()  # what the rollup beat task does every minute
                next_reconcile = time.monotonic() + RECONCILE_EVERY
            time.sleep(1.0)

    def _summary(
        self,
        run: Any,
        groups: list[scenario.Group],
        total: int,
        complete: bool,
        elapsed: float,
        options: dict[str, Any],
    ) -> None:
        counts = self._counts(run)
        self.say("")
        self.say(self.style.MIGRATE_HEADING(f"Summary per status ({total} messages)"))
        for code in [*KNOWN, *(c for c in counts if c not in KNOWN)]:
            if counts.get(code):
                self.say(f"  {code:<12} {counts[code]:>5}")
        sources = Counter(
            dict(
                StatusEvent.objects.filter(
                    message__in=run, applied=True, status__in=status.TERMINAL_STATUSES
                )
                .values_list("source")
                .annotate(n=Count("pk"))
                .order_by()
            )
        )
        learnt = ", ".join(f"{SOURCE_NAMES.get(s, s).lower()} {n}" for s, n in sources.items())
        self.say(f"Final statuses learnt from: {learnt or 'nothing yet'}")
        for group in groups:
            group_counts = self._counts(group.messages())
            detail = ", ".join(f"{s} {n}" for s, n in sorted(group_counts.items()))
            self.say(f"  {group.label:<28} {detail}")
        final = sum(n for s, n in counts.items() if status.is_terminal(s))
        if complete:
            self.say(
                self.style.SUCCESS(
                    f"All {total} messages reached a final state in {elapsed:.1f} s."
                )
            )
        else:
            self.say(
                self.style.ERROR(
                    f"{total - final} of {total} messages did not reach a final state within "
                    f"{options['timeout']:.0f} s."
                )
            )
