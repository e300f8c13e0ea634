"""Every Python example in README.rst and docs/*.rst runs here, and the docs match the code.

How examples are found and run (the conventions doc writers follow):

* ``.. code-block:: python`` (also ``python3``, ``py``) and ``.. code-block:: pycon`` blocks
  are examples. Blocks in other languages (``console``, ``bash``, ``text``, ``ini``...) are
  not Python and are not run. Bare ``>>>`` doctest paragraphs are not allowed (use
  ``pycon``), and neither are Python snippets in plain ``::`` literal blocks.
* A block whose first line starts with ``>>>`` is a doctest: its output is checked
  (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` on). Other blocks are executed with ``exec``.
* All blocks of one file share one namespace, top to bottom, like a reader's session: a
  later block may use names an earlier one defined.
* The namespace starts with copies of the test settings (every UPPER_CASE name) and ``os``,
  so settings snippets (``INSTALLED_APPS += [...]``, ``EXOTEL_SMS = {...}``,
  ``EXOTEL_SMS["DELIVERY"] = ...``) run as they would at the end of a settings.py. A block
  that creates or changes ``EXOTEL_SMS`` is also run through the app's system checks: an
  unknown key or any error fails, except a missing credential (``E010``: examples read
  credentials from environment variables that are not set here).
* Hidden set-up: an RST comment just before a block, ``.. test-setup:`` followed by
  indented Python lines, runs those lines first; it is not rendered. ``request`` (pytest's
  fixture request) is in the namespace for it, e.g. ``request.getfixturevalue("live_server")``.
* Markers, RST comments just before a block, for blocks that are files rather than
  snippets:

  - ``.. install: mysite/<file>.py append|replace|create`` (README): the installation steps.
    Here the ``settings.py`` ones run in the settings namespace, and the others are written
    into a throw-away ``mysite`` package that is then imported. ``tests/test_packaging.py``
    applies them literally to a project made by ``django-admin startproject mysite``.
  - ``.. install: manage.py shell`` (README): run there with ``manage.py shell -c``.
  - ``.. install: environment`` (README, a ``console`` block): the ``export`` lines that
    point the project at the local stand-in; the packaging test runs with them.
  - ``.. test-file: <name>.py`` (docs/testing.rst): also written, with the other blocks so
    marked, into a temporary directory and run by pytest in a subprocess, so the fixtures
    and tests users copy really pass.

The environment: a transactional test database (so on-commit sends happen when the docs
say they do, as in a project), the locmem backend and settings of ``tests/settings.py``,
Celery tasks run eagerly (as with ``CELERY_TASK_ALWAYS_EAGER``), each block inside
``django_capture_on_commit_callbacks(execute=True)``. Signal receivers and the current
Celery app an example sets up are undone after its file.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import doctest
import importlib
import os
import re
import shlex
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import override_settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOC_FILES = [ROOT / "README.rst", *sorted(DOCS.glob("*.rst"))]
PYTHON = {"python", "python3", "py", "pycon"}
ALLOWED_CHECK_IDS = {"django_exotel_sms.E010"}

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S+)\s*$")
_MARKER = re.compile(r"^\s*\.\. (?P<kind>install|test-file|test-setup):\s*(?P<arg>.*)$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    setup: str = ""
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.language in PYTHON

    @property
    def is_doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def _indented_body(lines: list[str], start: int, min_indent: int) -> tuple[list[str], int]:
    """Lines from ``start`` indented deeper than ``min_indent`` (blank lines kept), and the end."""
    body: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) <= min_indent:
            break
        body.append(line)
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return body, i


def parse_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    markers: dict[str, str] = {}
    setup = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            indent = len(line) - len(line.lstrip())
            if marker["kind"] == "test-setup":
                body, i = _indented_body(lines, i + 1, indent)
                setup = textwrap.dedent("\n".join(body))
            else:
                markers[marker["kind"]] = marker["arg"].strip()
                i += 1
            continue
        directive = _DIRECTIVE.match(line)
        if directive:
            indent = len(directive["indent"])
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith(":"):  # directive options
                j += 1
            body, end = _indented_body(lines, j, indent)
            first = next((k for k, text in enumerate(body) if text.strip()), 0)
            blocks.append(
                Block(
                    path=path,
                    line=j + first + 1,
                    language=directive["lang"].lower(),
                    code=textwrap.dedent("\n".join(body[first:])) + "\n",
                    setup=setup,
                    markers=markers,
                )
            )
            markers, setup = {}, ""
            i = end
            continue
        i += 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [b for b in parse_blocks(path) if b.is_python]


# -- running examples ---------------------------------------------------------------------


def _settings_namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {}
    for name in dir(settings):
        if name.isupper():
            with warnings.catch_warnings():  # reading a deprecated default warns (Django 4.2)
                warnings.simplefilter("ignore")
                value = getattr(settings, name)
            try:
                ns[name] = copy.deepcopy(value)
            except Exception:  # noqa: BLE001 - an uncopyable setting is shared, not copied
                ns[name] = value
    return ns


def _compile(code: str, block: Block) -> Any:
    # Padding keeps the RST file's line numbers in tracebacks.
    return compile("\n" * (block.line - 1) + code, str(block.path), "exec")


def _run_doctest(block: Block, ns: dict[str, Any]) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, ns, block.where, str(block.path), block.line - 1)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report: list[str] = []
    runner.run(test, out=report.append, clear_globs=False)
    ns.update(test.globs)  # DocTest works on a copy; later blocks see what this one defined
    if runner.failures:
        pytest.fail(f"doctest in {block.where} failed:\n" + "".join(report), pytrace=False)


def _check_exotel_settings(block: Block, value: Any) -> None:
    from django_exotel_sms.checks import check_settings

    with override_settings(EXOTEL_SMS=value):
        found = check_settings()
    bad = [m for m in found if m.id not in ALLOWED_CHECK_IDS]
    assert not bad, f"EXOTEL_SMS in {block.where} fails the system checks: {bad}"


def run_block(block: Block, ns: dict[str, Any]) -> None:
    before = copy.deepcopy(ns.get("EXOTEL_SMS"))
    if block.setup:
        exec(_compile(block.setup, block), ns)  # noqa: S102
    if block.is_doctest:
        _run_doctest(block, ns)
    else:
        exec(_compile(block.code, block), ns)  # noqa: S102
    if "EXOTEL_SMS" in ns and ns["EXOTEL_SMS"] != before:
        _check_exotel_settings(block, ns["EXOTEL_SMS"])


@contextlib.contextmanager
def eager_celery() -> Iterator[None]:
    """Tasks run in-process; whatever Celery app an example creates is not left current."""
    from celery import _state, current_app

    app = current_app._get_current_object()
    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    try:
        yield
    finally:
        _state._set_current_app(app)
        app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@contextlib.contextmanager
def restored_signals() -> Iterator[None]:
    from django_exotel_sms import signals

    sigs = (
        signals.sms_status_changed,
        signals.sms_delivered,
        signals.sms_failed,
        signals.pre_send,
    )
    saved = [list(s.receivers) for s in sigs]
    try:
        yield
    finally:
        for sig, receivers in zip(sigs, saved):
            with sig.lock:
                sig.receivers = receivers
                sig.sender_receivers_cache.clear()


@contextlib.contextmanager
def throwaway_project(blocks: list[Block], tmp_path: Path) -> Iterator[list[str]]:
    """Write the README's non-settings install blocks into a ``mysite`` package on sys.path."""
    package = tmp_path / "mysite"
    package.mkdir()
    (package / "__init__.py").write_text("")
    written: list[str] = []
    for block in blocks:
        target, _, mode = block.markers["install"].partition(" ")
        if not target.startswith("mysite/") or target.endswith("settings.py"):
            continue
        path = tmp_path / target
        old = path.read_text() if path.exists() else ""
        path.write_text((old + "\n" + block.code) if mode.strip() == "append" else block.code)
        written.append(target[:-3].replace("/", "."))
    sys.path.insert(0, str(tmp_path))
    try:
        yield written
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "mysite" or m.startswith("mysite.")]:
            del sys.modules[name]


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


FILES_WITH_EXAMPLES = [p for p in DOC_FILES if python_blocks(p)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", FILES_WITH_EXAMPLES, ids=_doc_id)
def test_examples_run(path, request, django_capture_on_commit_callbacks, tmp_path):
    blocks = python_blocks(path)
    ns: dict[str, Any] = {
        **_settings_namespace(),
        "__name__": f"docs_example_{path.stem.replace('-', '_')}",
        "os": os,
        "request": request,
    }
    project_blocks = []
    with eager_celery(), restored_signals():
        for block in blocks:
            target = block.markers.get("install", "")
            if target.startswith("mysite/") and not target.split()[0].endswith("settings.py"):
                project_blocks.append(block)  # a file of the project, imported below
                continue
            try:
                with django_capture_on_commit_callbacks(execute=True):
                    run_block(block, ns)
            except Exception as exc:
                raise AssertionError(f"example at {block.where} failed: {exc!r}") from exc
        if project_blocks:
            with throwaway_project(project_blocks, tmp_path) as modules:
                for name in ["mysite", *modules]:
                    importlib.import_module(name)


# -- the documents themselves -------------------------------------------------------------


def test_every_python_block_is_marked_as_such():
    """No Python hides in a ``::`` literal block or a bare doctest, where nothing runs it."""
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        in_code = False
        for number, line in enumerate(text.splitlines(), start=1):
            if _DIRECTIVE.match(line):
                in_code = True
            elif line.strip() and not line.startswith((" ", "\t")):
                in_code = False
            if not in_code and line.strip().startswith(">>>"):
                pytest.fail(f"{path.name}:{number}: use '.. code-block:: pycon' for doctests")
        for block in parse_blocks(path):
            if not block.is_python:
                assert not re.search(r"^\s*>>> ", block.code, re.M), (
                    f"{block.where}: a doctest in a {block.language!r} block is never run; "
                    "use '.. code-block:: pycon'"
                )


def test_readme_starts_with_the_two_commands():
    head = "\n".join((ROOT / "README.rst").read_text(encoding="utf-8").splitlines()[:30])
    assert "$ bash scripts/demo.sh" in head
    assert "$ bash scripts/test.sh" in head
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^bash scripts/test\.sh\s*$", ci, re.MULTILINE)
    assert (ROOT / "scripts" / "test.sh").exists()
    assert (ROOT / "scripts" / "demo.sh").exists()


def test_readme_installation_steps_are_machine_appliable():
    blocks = [b for b in parse_blocks(ROOT / "README.rst") if "install" in b.markers]
    targets = [b.markers["install"] for b in blocks]
    assert targets == [
        "mysite/settings.py append",
        "mysite/settings.py append",
        "mysite/settings.py append",
        "mysite/urls.py replace",
        "mysite/celery.py create",
        "mysite/__init__.py append",
        "mysite/settings.py append",
        "environment",
        "manage.py shell",
    ]
    code = [b for b in blocks if b.markers["install"] != "environment"]
    assert all(b.language == "python" for b in code)
    for block in code:
        ast.parse(block.code)
    settings_code = "\n".join(b.code for b in blocks if b.markers["install"].startswith("mysite/s"))
    assert '"django_exotel_sms"' in settings_code and "EXOTEL_SMS = {" in settings_code
    assert '"transaction_mode": "IMMEDIATE"' in settings_code  # SQLite with a worker
    urls = next(b.code for b in blocks if "urls.py" in b.markers["install"])
    assert 'include("django_exotel_sms.urls")' in urls
    assert "send_async=False" in blocks[-1].code


def exported(block: Block) -> dict[str, str]:
    """``NAME=value`` pairs of a console block's ``$ export`` lines."""
    pairs: dict[str, str] = {}
    for line in block.code.splitlines():
        words = shlex.split(line.strip().removeprefix("$").strip(), comments=True)
        if words[:1] == ["export"]:
            pairs.update(word.split("=", 1) for word in words[1:])
    return pairs


def test_readme_steps_work_in_the_order_given():
    """Every ``manage.py`` or ``celery`` command comes after the credentials it needs."""
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    first = text[: text.index(".. quickstart-start")].count("\n") + 1
    last = text[: text.index(".. quickstart-end")].count("\n") + 1
    blocks = [b for b in parse_blocks(ROOT / "README.rst") if first < b.line < last]
    settings_code = "\n".join(
        b.code for b in blocks if b.markers.get("install", "").startswith("mysite/settings.py")
    )
    needed = set(
        re.findall(
            r'"(?:ACCOUNT_SID|API_KEY|API_TOKEN)": os\.environ\.get\("(\w+)"\)', settings_code
        )
    )
    assert len(needed) == 3, settings_code
    commands = 0
    have: set[str] = set()
    for block in blocks:
        if block.language != "console":
            continue
        have |= set(exported(block))
        if re.search(r"^\$ (python manage\.py|celery -A)", block.code, re.M):
            commands += 1
            assert needed <= have, f"{block.where} runs before {sorted(needed - have)} are set"
    assert commands
    # The stand-in's values are given whole, for the packaging test to use as they are.
    [sandbox] = [b for b in blocks if b.markers.get("install") == "environment"]
    assert exported(sandbox)["EXOTEL_ACCOUNT_SID"] == "sandbox"
    assert set(exported(sandbox)) >= needed | {"EXOTEL_BASE_URL", "EXOTEL_CALLBACK_BASE_URL"}


def test_readme_says_how_to_install_before_the_package_is_on_pypi():
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    install = text[text.index(".. quickstart-start") : text.index("**Settings.**")]
    assert "not on PyPI yet" in install and "$ pip install /path/to/django-exotel-sms" in install


def _section(text: str, title: str) -> str:
    match = re.search(
        rf"^{re.escape(title)}\n[-=~^]+\n(.*?)(?=^\S[^\n]*\n[-=~^]+\n|\Z)", text, re.M | re.S
    )
    assert match, f"no section {title!r}"
    return match.group(1)


def test_configuration_reference_lists_every_setting_with_its_default():
    from django_exotel_sms import conf

    text = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    documented = dict(re.findall(r"^``([A-Z_]+)``\n\s+Default: ``(.+?)``", text, re.M))
    assert set(documented) == set(conf.DEFAULTS), (
        f"undocumented: {sorted(set(conf.DEFAULTS) - set(documented))}, "
        f"not settings: {sorted(set(documented) - set(conf.DEFAULTS))}"
    )
    for key, literal in documented.items():
        assert ast.literal_eval(literal) == conf.DEFAULTS[key], f"{key}: docs say {literal}"
    for key in conf.ACCOUNT_KEYS:
        assert f"``{key}``" in _section(text, "Per-account settings"), key


def test_every_system_check_is_documented():
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "django_exotel_sms").glob("checks*.py")
    )
    ids = set(re.findall(r'id=f"\{_ID\}\.([EW]\d{3})"', source))
    assert {"W035", "E035", "W036"} <= ids
    assert len(ids) >= 15
    text = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    missing = sorted(i for i in ids if f"django_exotel_sms.{i}" not in text)
    assert not missing, f"checks not in docs/configuration.rst: {missing}"


def test_every_status_is_documented():
    from django_exotel_sms import status

    delivery = (DOCS / "delivery.rst").read_text(encoding="utf-8")
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    for value, _label in status.STATUS_CHOICES:
        assert f"``{value}``" in delivery, value
        assert f"``{value}``" in readme, value
    for value in status.TERMINAL_STATUSES:
        assert f"``{value}``" in _section(readme, "Statuses")


def test_public_names_the_docs_mention_exist():
    from django_exotel_sms import signals, tasks
    from django_exotel_sms.models import SmsMessage

    text = "\n".join(p.read_text(encoding="utf-8") for p in DOC_FILES)
    for name in ("sms_status_changed", "sms_delivered", "sms_failed"):
        assert hasattr(signals, name) and f"``{name}``" in text, name
    for name in ("send_message", "send_batch", "refresh_message", "reconcile"):
        assert hasattr(tasks, name) and f"django_exotel_sms.tasks.{name}" in text, name
    for name in ("send", "send_bulk", "final", "not_final"):
        assert hasattr(SmsMessage.objects, name)
    # Every keyword of the manager's send() is documented in the sending guide.
    import inspect

    sending = (DOCS / "sending.rst").read_text(encoding="utf-8")
    for name in inspect.signature(SmsMessage.objects.send).parameters:
        assert f"``{name}``" in sending, f"send({name}=...) is not in docs/sending.rst"
    bulk = (DOCS / "bulk.rst").read_text(encoding="utf-8")
    for name in inspect.signature(SmsMessage.objects.send_bulk).parameters:
        assert f"``{name}``" in bulk or f"``{name}``" in sending, f"send_bulk({name}=...)"


def test_every_management_command_is_documented():
    folders = [
        ROOT / "django_exotel_sms" / "management" / "commands",
        *ROOT.glob("example_project/*/management/commands"),
    ]
    commands = sorted(p.stem for f in folders for p in f.glob("*.py") if not p.name.startswith("_"))
    assert "exotel_sandbox" in commands
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOC_FILES)
    missing = [name for name in commands if name not in text]
    assert not missing, f"management commands not in the docs: {missing}"


def test_quickstart_includes_the_readme_installation():
    quickstart = (DOCS / "quickstart.rst").read_text(encoding="utf-8")
    assert ".. include:: ../README.rst" in quickstart
    assert ":start-after: .. quickstart-start" in quickstart
    readme = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert readme.count(".. quickstart-start") == 1 and readme.count(".. quickstart-end") == 1


def test_docs_toctree_lists_every_page():
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    for page in DOCS.glob("*.rst"):
        if page.stem != "index":
            assert re.search(rf"^\s+{re.escape(page.stem)}\s*$", index, re.M), page.name


def test_campaign_docs_show_screenshots_that_are_in_the_repository():
    images = {}
    for page in DOCS.glob("*.rst"):
        for target in re.findall(r"^\.\. (?:image|figure):: (\S+)", page.read_text(), re.M):
            # Sphinx reads "/x" from the docs root, anything else from the page's folder.
            path = DOCS / target[1:] if target.startswith("/") else page.parent / target
            images[f"{page.name}: {target}"] = path.is_file()
    assert images and all(images.values()), images
    campaigns = (DOCS / "campaigns.rst").read_text()
    for screen in ("compose", "preview", "batch-done"):
        assert f".. figure:: /images/campaigns/{screen}.png" in campaigns


@pytest.mark.slow
def test_sphinx_build_is_warning_free(tmp_path):
    pytest.importorskip("sphinx")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


GUIDE_SETTINGS = """\
import django

from tests.settings import *  # noqa: F403

# As docs/testing.rst advises: the live server writes callbacks while a test sends, so
# SQLite must take its write lock up front and wait for it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and django.VERSION >= (5, 1):  # noqa: F405
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}  # noqa: F405
"""


@pytest.mark.slow
def test_testing_guide_files_pass_under_pytest(tmp_path):
    """The conftest.py and tests in docs/testing.rst, copied as users would, pass."""
    files: dict[str, str] = {}
    for block in python_blocks(DOCS / "testing.rst"):
        name = block.markers.get("test-file")
        if name:
            files[name] = files.get(name, "") + block.code
    assert "conftest.py" in files and any(n.startswith("test_") for n in files)
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    (tmp_path / "guide_settings.py").write_text(GUIDE_SETTINGS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = guide_settings\n", encoding="utf-8"
    )
    args = []
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and django.VERSION < (5, 1):
        # SQLite before Django 5.1 cannot wait for its write lock (no transaction_mode), as
        # the end-to-end tests need while the live server writes callbacks.
        args = ["-k", "not through_exotel"]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # Own databases: a file for SQLite (the live server's threads need their own
        # connections), a separate name for servers so the running suite's is untouched.
        "SQLITE_TEST_PATH": str(tmp_path / "test.sqlite3"),
        "TEST_DB_NAME": f"test_docs_guide_{os.getpid()}",
        "DJANGO_SETTINGS_MODULE": "guide_settings",  # the parent's would win over pytest.ini
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    names = [n for code in files.values() for n in re.findall(r"^def (test_\w+)", code, re.M)]
    tests = len([n for n in names if not args or "through_exotel" not in n])
    assert re.search(rf"\b{tests} passed\b", output), output
