"""The README's demo command, end to end: ``manage.py exotel_demo --exit-when-done``.

Runs in a subprocess on a temporary SQLite file and free ports, so it touches neither the
repository's database nor other tests' servers.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
MANAGE = REPO / "example_project" / "manage.py"
TOTAL = 1 + 300 + 50 + 1  # single, same-text bulk, per-recipient bulk, template send


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("worker", ["auto", "embedded"])
def test_demo_sends_and_every_message_ends_final(tmp_path, worker):
    if worker == "auto" and not redis_up():
        pytest.skip("Redis is down: 'auto' would be the embedded run, tested separately")
    env = {
        **os.environ,
        "EXAMPLE_DB_PATH": str(tmp_path / "demo.sqlite3"),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    for name in ("DATABASE_URL", "EXAMPLE_DB", "EXOTEL_SMS_OVERRIDES", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    command = [
        sys.executable,
        str(MANAGE),
        "exotel_demo",
        "--exit-when-done",
        "--timeout",
        "120",
        "--port",
        str(free_port()),
        "--sandbox-port",
        str(free_port()),
        "--worker",
        worker,
    ]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a hung run can be stopped with everything it started
    )
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the demo did not finish:\n{output}")

    assert proc.returncode == 0, output
    if worker == "embedded":
        assert "EMBEDDED FALLBACK" in output
    else:
        assert "Celery worker ready" in output
    assert "Admin user: 'demo', password 'exotel-demo'" in output
    assert f"All {TOTAL} messages reached a final state" in output, output
    summary = output.split(f"Summary per status ({TOTAL} messages)", 1)[1]
    counts = {
        m["status"]: int(m["n"])
        for m in re.finditer(r"^  (?P<status>[a-z-]+)\s+(?P<n>\d+)$", summary, re.MULTILINE)
    }
    # Every message final, and each outcome rule of the stand-in visible.
    assert set(counts) == {"sent", "failed-dnd", "failed", "rejected"}, summary
    assert sum(counts.values()) == TOTAL
    assert (counts["failed-dnd"], counts["failed"], counts["rejected"]) == (13, 5, 1)
    # The final statuses came through the signed status callbacks.
    learnt = re.search(r"status callback (\d+)", summary)
    assert learnt is not None and int(learnt.group(1)) == TOTAL - 1, summary
    assert "Stopped." in output
