"""The package as users get it: built, checked, installed in a fresh virtualenv, and used.

``python -m build`` makes the sdist and the wheel; ``twine check`` passes on both; both
carry the migrations, templates, static files (if any) and ``py.typed``. Then the wheel is
installed into a brand-new virtualenv (its dependencies come from the package index), the
local Exotel runs from there, and a project made by ``django-admin startproject mysite``
gets the README's installation steps applied literally (the blocks after the
``.. install:`` markers, see ``tests/test_docs.py``), migrates, serves itself with
``runserver``, and sends one message through the stand-in -- which ends ``sent`` through its
status callback.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_docs import ROOT, parse_blocks

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(1800)]

PACKAGE = ROOT / "django_exotel_sms"
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (PACKAGE / "__init__.py").read_text(), re.MULTILINE
).group(1)  # type: ignore[union-attr]
SANDBOX = {"EXOTEL_ACCOUNT_SID": "sandbox", "EXOTEL_API_KEY": "sandboxkey"}
SANDBOX["EXOTEL_API_TOKEN"] = "sandboxtoken"


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


def apply_readme_installation(project: Path) -> str:
    """Apply the README's marked installation blocks to ``project``; return the shell code."""
    blocks = [b for b in parse_blocks(ROOT / "README.rst") if "install" in b.markers]
    assert blocks, "README.rst has no '.. install:' blocks"
    shell = ""
    for block in blocks:
        target, _, mode = block.markers["install"].partition(" ")
        if target == "manage.py":
            assert mode == "shell"
            shell = block.code
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
    return shell


def test_new_project_following_the_readme_sends_a_message_that_ends_sent(venv, tmp_path, processes):
    python = venv / "bin" / "python"
    project = tmp_path / "mysite"
    project.mkdir()
    run([venv / "bin" / "django-admin", "startproject", "mysite", project], env=_clean_env())
    send_code = apply_readme_installation(project)

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

    port = _free_port()
    env = _clean_env(
        **SANDBOX,
        EXOTEL_BASE_URL=sandbox_url,
        EXOTEL_CALLBACK_BASE_URL=f"http://127.0.0.1:{port}/exotel/",
    )
    manage = [python, "manage.py"]
    checks = run([*manage, "check", "--fail-level", "WARNING"], cwd=project, env=env)
    assert "no issues" in checks.stdout
    run([*manage, "migrate", "--noinput"], cwd=project, env=env)

    server_log = tmp_path / "runserver.log"
    with server_log.open("w") as out:
        processes.append(
            subprocess.Popen(
                [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=project,
                env=env,
            )
        )
    _wait_for(lambda: _accepts(port), 60, "runserver", server_log)

    shell = [*manage, "shell", "--verbosity", "0", "--command"]
    sent = run([*shell, send_code], cwd=project, env=env)
    assert sent.stdout.split()[0] == "queued", sent.stdout

    probe = (
        "from django_exotel_sms.models import SmsMessage\n"
        "m = SmsMessage.objects.get()\n"
        "print(m.status, m.sid, *m.events.values_list('source', flat=True))"
    )
    seen: list[str] = []

    def final() -> bool:
        seen[:] = run([*shell, probe], cwd=project, env=env).stdout.split()
        return seen[0] == "sent"

    _wait_for(final, 90, "the message to end 'sent'", server_log)
    status, sid, *sources = seen
    assert sid != "None" and sources == ["api", "callback"], seen
    assert re.search(r'"POST /exotel/status/m1:[^ ]+/ HTTP/1\.1" 200', server_log.read_text())
