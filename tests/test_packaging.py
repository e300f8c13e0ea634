"""The package as users get it: built, checked, installed in a fresh virtualenv, and used.

``python -m build`` makes the sdist and the wheel; ``twine check`` passes on both; both
carry the migrations, templates, static files (if any) and ``py.typed``. Then the wheel is
installed into a brand-new virtualenv (its dependencies come from the package index), the
local Exotel runs from there, and a project made by ``django-admin startproject mysite``
gets the README's installation steps applied literally (the blocks after the
``.. install:`` markers, see ``tests/test_docs.py``; the environment is the README's
``export`` lines for the stand-in), migrates, serves itself with ``runserver``, and sends
one message through the stand-in -- which ends ``sent`` through its status callback. Then,
with the README's Celery worker on startproject's SQLite file, a bulk of 300 and 20 single
sends: no callback answered 5xx, every message final, every recipient sent once.

Marked ``packaging`` (and the load test ``celery_worker``): ``scripts/test.sh`` runs them in
its PostgreSQL pass; the project under test has its own SQLite file whatever ``TEST_DB`` is.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_exotel_sms.sandbox.control import SandboxControl
from tests.helpers import BROKER_URL, purge_broker
from tests.test_docs import ROOT, exported, parse_blocks

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(1800)]

PACKAGE = ROOT / "django_exotel_sms"
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (PACKAGE / "__init__.py").read_text(), re.MULTILINE
).group(1)  # type: ignore[union-attr]


def run(args: list[str | Path], *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def package_data() -> list[str]:
    """Non-code files the package needs at run time, and its migrations, relative to ROOT."""
    found = [PACKAGE / "py.typed", *sorted((PACKAGE / "migrations").glob("*.py"))]
    for folder in ("templates", "static"):
        found += sorted(p for p in (PACKAGE / folder).rglob("*") if p.is_file())
    return [p.relative_to(ROOT).as_posix() for p in found if "__pycache__" not in p.parts]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, ROOT])
    (out / "build.log").write_text(result.stdout + result.stderr)
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    [path] = dist.glob("django_exotel_sms-*.whl")
    return path


@pytest.fixture(scope="module")
def sdist(dist) -> Path:
    [path] = dist.glob("django_exotel_sms-*.tar.gz")
    return path


def test_twine_check_passes(dist, wheel, sdist):
    result = run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist])
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_build_prints_no_package_discovery_warnings(dist):
    # Template folders outside the packages configuration made setuptools print a long
    # warning per folder on every build and every `pip install -e .`.
    log = (dist / "build.log").read_text()
    assert "absent from the `packages` configuration" not in log, log
    assert "Package would be ignored" not in log


def test_wheel_and_sdist_carry_migrations_templates_static_and_py_typed(wheel, sdist):
    wanted = package_data()
    assert "django_exotel_sms/py.typed" in wanted
    assert "django_exotel_sms/migrations/0001_initial.py" in wanted
    assert any(p.startswith("django_exotel_sms/templates/") for p in wanted)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert not sorted(set(wanted) - in_wheel), "missing from the wheel"
    prefix = f"django_exotel_sms-{VERSION}/"
    with tarfile.open(sdist) as archive:
        in_sdist = {name.removeprefix(prefix) for name in archive.getnames()}
    assert not sorted(set(wanted) - in_sdist), "missing from the sdist"
    # The sdist can rebuild the docs: the pages and what they include.
    docs = ["README.rst", "CHANGELOG.rst", "LICENSE", "docs/conf.py"]
    docs += [p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.rst")]
    docs += [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "docs").rglob("*.png")
        if "_build" not in p.relative_to(ROOT).parts  # a local docs build is not shipped
    ]
    assert not sorted(set(docs) - in_sdist), "missing from the sdist"


# -- a fresh virtualenv ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    path = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", path])
    python = path / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], timeout=1200, env=_clean_env())
    return path


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what points at this checkout or its test settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env.update(extra)
    return env


def test_installed_package_is_the_wheel_and_runs_the_sandbox(venv, tmp_path):
    python = venv / "bin" / "python"
    where = run(
        [python, "-c", "import django_exotel_sms; print(django_exotel_sms.__file__)"],
        cwd=tmp_path,
        env=_clean_env(),
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    result = run(
        [python, "-m", "django_exotel_sms.sandbox", "--help"], cwd=tmp_path, env=_clean_env()
    )
    assert "usage: python -m django_exotel_sms.sandbox" in result.stdout
    assert "--callback-delay" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            pytest.fail(f"timed out waiting for {what}\n{detail}")
        time.sleep(0.2)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Readme:
    """What the README's installation blocks say: files applied, a shell snippet, exports."""

    shell: str
    environment: dict[str, str]


def apply_readme_installation(project: Path) -> Readme:
    """Apply the README's marked installation blocks to ``project``."""
    blocks = [b for b in parse_blocks(ROOT / "README.rst") if "install" in b.markers]
    assert blocks, "README.rst has no '.. install:' blocks"
    shell = ""
    environment: dict[str, str] = {}
    for block in blocks:
        target, _, mode = block.markers["install"].partition(" ")
        if target == "manage.py":
            assert mode == "shell"
            shell = block.code
            continue
        if target == "environment":
            environment.update(exported(block))
            continue
        path = project / target
        if mode == "create":
            assert not path.exists(), f"{target} already exists in a new project"
            path.write_text(block.code)
        elif mode == "replace":
            assert path.exists(), f"{target} is not in a new project"
            path.write_text(block.code)
        else:
            assert mode == "append", block.markers
            path.write_text(path.read_text() + "\n\n" + block.code)
    assert shell, "README.rst has no '.. install: manage.py shell' block"
    assert environment, "README.rst has no '.. install: environment' block"
    return Readme(shell, environment)


# The README's stand-in and runserver addresses, replaced by free ports here.
README_SANDBOX = "http://127.0.0.1:8765"
README_SERVER = "127.0.0.1:8000"


@dataclass
class Site:
    """A startproject ``mysite`` with the README applied, the stand-in and runserver up."""

    python: Path
    project: Path
    env: dict[str, str]
    readme: Readme
    sandbox_url: str
    server_log: Path

    def manage(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return run(
            [self.python, "manage.py", *args], cwd=self.project, env=self.env, timeout=timeout
        )

    def shell(self, code: str) -> str:
        return self.manage("shell", "--verbosity", "0", "--command", code).stdout


@pytest.fixture
def site(venv, tmp_path, processes) -> Site:
    python = venv / "bin" / "python"
    project = tmp_path / "mysite"
    project.mkdir()
    run([venv / "bin" / "django-admin", "startproject", "mysite", project], env=_clean_env())
    readme = apply_readme_installation(project)

    sandbox_log = tmp_path / "sandbox.log"
    with sandbox_log.open("w") as out:
        processes.append(
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "django_exotel_sms.sandbox",
                    "--port",
                    "0",
                    "--callback-delay",
                    "0.2",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env=_clean_env(),
            )
        )
    url_pattern = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")
    _wait_for(lambda: url_pattern.search(sandbox_log.read_text()), 30, "the sandbox", sandbox_log)
    sandbox_url = url_pattern.search(sandbox_log.read_text()).group(1)  # type: ignore[union-attr]

    # The README's exports, as a reader in another terminal would run them, on free ports.
    port = _free_port()
    environment = dict(readme.environment)
    assert environment["EXOTEL_BASE_URL"] == README_SANDBOX
    environment["EXOTEL_BASE_URL"] = sandbox_url
    assert README_SERVER in environment["EXOTEL_CALLBACK_BASE_URL"]
    environment["EXOTEL_CALLBACK_BASE_URL"] = environment["EXOTEL_CALLBACK_BASE_URL"].replace(
        README_SERVER, f"127.0.0.1:{port}"
    )
    env = _clean_env(**environment, CELERY_BROKER_URL=BROKER_URL)
    server_log = tmp_path / "runserver.log"
    site = Site(python, project, env, readme, sandbox_url, server_log)
    checks = site.manage("check", "--fail-level", "WARNING")
    assert "no issues" in checks.stdout
    site.manage("migrate", "--noinput")

    with server_log.open("w") as out:
        processes.append(
            subprocess.Popen(
                [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=project,
                env=env,
            )
        )
    _wait_for(lambda: _accepts(port), 60, "runserver", server_log)
    return site


def test_new_project_following_the_readme_sends_a_message_that_ends_sent(site):
    sent = site.shell(site.readme.shell)
    assert sent.split()[0] == "queued", sent

    probe = (
        "from django_exotel_sms.models import SmsMessage\n"
        "m = SmsMessage.objects.get()\n"
        "print(m.status, m.sid, *m.events.values_list('source', flat=True))"
    )
    seen: list[str] = []

    def final() -> bool:
        seen[:] = site.shell(probe).split()
        return seen[0] == "sent"

    _wait_for(final, 90, "the message to end 'sent'", site.server_log)
    status, sid, *sources = seen
    assert sid != "None" and sources == ["api", "callback"], seen
    callback = r'"POST /exotel/status/m1[.:][^ ]+/ HTTP/1\.1" 200'
    assert re.search(callback, site.server_log.read_text())


BULK = 300
SINGLES = 20
FINAL = ("sent", "failed-dnd", "failed", "rejected")


@pytest.mark.celery_worker
def test_readme_project_on_sqlite_with_a_worker_sends_a_bulk_without_5xx(site, processes):
    """The README's setup under load, on startproject's SQLite file: the worker (two
    processes) records sends while runserver records the stand-in's callbacks. No request
    meets "database is locked": no 5xx, every message final, every recipient sent once."""
    assert "sqlite3" in site.shell(
        "from django.db import connection; print(connection.settings_dict['ENGINE'])"
    )
    purge_broker(BROKER_URL)
    worker_log = site.project.parent / "worker.log"
    with worker_log.open("w") as out:
        processes.append(
            subprocess.Popen(
                # The README's command, as written (the default concurrency: one per core).
                [site.python.parent / "celery", "-A", "mysite", "worker", "--loglevel=info"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=site.project,
                env=site.env,
            )
        )
    _wait_for(lambda: " ready." in worker_log.read_text(), 60, "the worker", worker_log)

    sandbox = SandboxControl(site.sandbox_url)
    # Exotel waits 15 s for an answer; a loaded CI machine may be slower than Exotel's users.
    # Above SQLite's 20 s lock timeout, so a lock wait shows as a 503 and not as a timeout.
    sandbox.configure(callback_timeout=30)
    numbers = [f"+9198765{i:05d}" for i in range(BULK + SINGLES)]
    send = (
        "from django_exotel_sms.models import SmsMessage\n"
        f"numbers = {numbers!r}\n"
        f"SmsMessage.objects.send_bulk(to=numbers[:{BULK}], body='Sale today: 20% off at Acme.')\n"
        f"for n in numbers[{BULK}:]:\n"
        "    SmsMessage.objects.send(n, 'Your Acme OTP is 482913.')\n"
    )
    site.shell(send)
    probe = (
        "from collections import Counter\n"
        "from django_exotel_sms.models import SmsMessage\n"
        "print(dict(Counter(SmsMessage.objects.values_list('status', flat=True))))"
    )
    counts: dict[str, int] = {}

    def all_final() -> bool:
        counts.clear()
        counts.update(ast.literal_eval(site.shell(probe).strip()))
        return sum(counts.values()) == BULK + SINGLES and set(counts) <= set(FINAL)

    _wait_for(all_final, 240, "every message to be final", worker_log)
    assert sandbox.wait_for_callbacks(timeout=60)
    assert counts == {"sent": BULK + SINGLES}, counts
    recipients = sandbox.recipients()
    assert set(recipients) == set(numbers) and set(recipients.values()) == {1}
    # Every callback attempt was answered 200 at once: none failed, none had to be retried.
    callbacks = sandbox.callbacks()
    assert len(callbacks) >= BULK + SINGLES
    answers = Counter(c["status_code"] or c["error"] for c in callbacks)
    assert answers == {200: len(callbacks)}, answers
    server = site.server_log.read_text()
    assert not re.search(r'HTTP/1\.1" 5\d\d ', server), server[-4000:]
    for log in (server, worker_log.read_text()):
        assert "database is locked" not in log
