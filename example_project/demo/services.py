"""What the demo starts and stops: the web server, and a Celery worker (real or embedded).

The local Exotel stand-in is ``django_exotel_sms.sandbox.SandboxServer`` itself.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

PROJECT_DIR = Path(__file__).resolve().parent.parent  # example_project/
REPO_DIR = PROJECT_DIR.parent


def port_answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def broker_answers(url: str) -> bool:
    """True when the broker URL is Redis and something listens on its port."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return False
    return port_answers(parts.hostname, parts.port or 6379)


class _QuietHandler(WSGIRequestHandler):
    # Hundreds of callbacks would bury the progress lines: log only failures.
    def log_message(self, format: str, *args: Any) -> None:
        code = str(args[1]) if len(args) > 1 else ""
        if not code.isdigit() or int(code) >= 400:
            super().log_message(format, *args)


class WebServer:
    """The project (admin, dashboard, callback views) served from a thread of this process."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._httpd: ThreadedWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebServer:
        httpd = ThreadedWSGIServer((self.host, self.port), _QuietHandler)
        httpd.set_app(StaticFilesHandler(get_wsgi_application()))  # admin CSS without collectstatic
        self.port = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="web"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


class CeleryWorkerProcess:
    """``celery -A example_project worker`` in a subprocess, consuming the demo's queue."""

    description = "Celery worker subprocess on {broker}"

    def __init__(self, queue: str, env: dict[str, str], log_path: Path) -> None:
        self.queue = queue
        self.env = env
        self.log_path = log_path
        self.nodename = f"exotel-demo-{os.getpid()}@{socket.gethostname()}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> None:
        from example_project.celery import app

        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "example_project",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "4",
                "--queues",
                self.queue,
                "--hostname",
                self.nodename,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=PROJECT_DIR,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited at start:\n{self.log_tail()}")
            if app.control.ping(destination=[self.nodename], timeout=0.5):
                return
        raise RuntimeError(f"the Celery worker did not answer within {ready_timeout:.0f} s")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        clean = False
        if proc is not None and proc.poll() is None:
            proc.terminate()  # warm shutdown: running tasks finish, unacked ones go back
            try:
                proc.wait(20)
                clean = True
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
            if clean:  # keep the log only when the worker died or hung
                self.log_path.unlink(missing_ok=True)


class EmbeddedWorker:
    """Fallback without Redis: a real Celery worker in a thread, on an in-memory broker.

    Tasks, countdown retries and the worker's Django fix-ups behave as with a worker
    process; only the queue lives in this process (and is lost when it stops).
    """

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._cm: contextlib.AbstractContextManager[Any] | None = None

    def start(self) -> None:
        from celery.contrib.testing.worker import start_worker
        from example_project.celery import app

        # Celery reads CELERY_BROKER_URL from the environment before its configuration.
        os.environ["CELERY_BROKER_URL"] = app.conf.broker_url = "memory://localhost/"
        self._cm = start_worker(
            app,
            pool="threads",
            concurrency=4,
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=30.0,
            queues=[self.queue],
        )
        self._cm.__enter__()

    def alive(self) -> bool:
        return self._cm is not None

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def stop(self) -> None:
        cm, self._cm = self._cm, None
        if cm is not None:
            cm.__exit__(None, None, None)


def worker_env(overrides: str) -> dict[str, str]:
    """The environment a worker subprocess needs to see what this process sees."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get(
        "DJANGO_SETTINGS_MODULE", "example_project.settings"
    )
    env["EXOTEL_SMS_OVERRIDES"] = overrides
    paths = [str(PROJECT_DIR), str(REPO_DIR), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env
