"""What every benchmark shares: Django on the bench database, the sandbox, workers, gunicorn,
tables, JSON results and a description of the machine.

Everything started here is a subprocess in its own session, stopped by pid (its process
group) when the script ends, and talks only to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOGS = ROOT / "artifacts" / "bench"  # git-ignored
HOST = "127.0.0.1"
# Redis databases: the Celery broker and the shared limiter. BENCH_BROKER_URL /
# BENCH_RATE_LIMIT_URL (the variables bench/settings.py reads) or BENCH_*_DB pick them, so
# runs side by side use their own.
BROKER_DB = int(os.environ.get("BENCH_BROKER_DB", "13"))
RATE_DB = int(os.environ.get("BENCH_RATE_DB", "12"))
BROKER_URL = os.environ.get("BENCH_BROKER_URL", f"redis://{HOST}:6379/{BROKER_DB}")
RATE_URL = os.environ.get("BENCH_RATE_LIMIT_URL", f"redis://{HOST}:6379/{RATE_DB}")
DB_NAME = os.environ.get("BENCH_DB", "bench_exotel")
PYTHON = sys.executable

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- numbers and text -------------------------------------------------------------------------


def numbers(count: int, start: int = 0) -> list[str]:
    """Distinct valid Indian mobile numbers (E.164)."""
    return [f"+9198{start + i:08d}" for i in range(count)]


def number_stream(count: int, start: int = 0) -> Iterator[str]:
    for i in range(count):
        yield f"+9198{start + i:08d}"


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100.0 * (len(ordered) - 1))))
    return ordered[k]


def print_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align: bool = True
) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip())
    print(line)
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if align and _numeric(c) else c.ljust(w) for c, w in zip(row, widths)
            ).rstrip()
        )
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,]*\.?\d+[x%]?", text))


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- machine and results ----------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    try:
        import redis

        info["redis"] = redis.Redis(host=HOST, port=6379).info("server")["redis_version"]
    except Exception as exc:
        info["redis"] = f"unknown ({exc})"
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            info["postgresql"] = cursor.fetchone()[0]
    except Exception as exc:
        info["postgresql"] = f"unknown ({exc})"
    import celery
    import django

    info["django"] = django.get_version()
    info["celery"] = celery.__version__
    with contextlib.suppress(Exception):
        # Several people work in this tree: say which package files differed from the commit.
        info["uncommitted_package_files"] = subprocess.run(
            ["git", "diff", "--name-only", "HEAD", "--", "django_exotel_sms"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    with contextlib.suppress(Exception):
        info["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return info


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {path.relative_to(ROOT)}")
    return path


# -- services ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def flush_redis() -> None:
    import redis

    for url in (BROKER_URL, RATE_URL):
        redis.Redis.from_url(url).flushdb()


def ensure_database() -> None:
    """Create the bench database (once); PostgreSQL on 127.0.0.1, user postgres, trust."""
    import psycopg

    with psycopg.connect(
        host=HOST, user=os.environ.get("PGUSER", "postgres"), dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def setup_django(overrides: dict[str, Any] | None = None, *, migrate: bool = True) -> None:
    """Configure this process (and, through the environment, its children) and migrate."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DB"] = DB_NAME
    os.environ["BENCH_BROKER_URL"] = BROKER_URL  # read by bench/settings.py, here and in children
    os.environ["BENCH_RATE_LIMIT_URL"] = RATE_URL
    os.environ["EXOTEL_SMS_OVERRIDES"] = json.dumps(overrides or {})
    if migrate:
        ensure_database()
    import django

    django.setup()
    import bench.celery_app  # noqa: F401 - the app tasks are sent through (broker: Redis db 13)

    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def set_overrides(overrides: dict[str, Any]) -> None:
    """Change EXOTEL_SMS here and for children started from now on."""
    from django.conf import settings
    from django.test.utils import override_settings

    os.environ["EXOTEL_SMS_OVERRIDES"] = json.dumps(overrides)
    base = dict(settings.EXOTEL_SMS)
    base.update(overrides)
    override_settings(EXOTEL_SMS=base).enable()


def truncate_tables() -> None:
    from django.db import connection

    from django_exotel_sms.models import (
        ClickEvent,
        IdempotencyRecord,
        SmsBatch,
        SmsMessage,
        StatusEvent,
        Suppression,
    )

    models = (StatusEvent, ClickEvent, SmsMessage, SmsBatch, IdempotencyRecord, Suppression)
    tables = [m._meta.db_table for m in models]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        cursor.execute(f"ANALYZE {', '.join(tables)}")


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Process:
    """A child in its own session, logged to artifacts/bench/<name>.log, stopped by pid."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOGS / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group: the main process and its pool children at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        else:
            # The main process is gone; do not leave orphaned children behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def tree_pids(self) -> list[int]:
        """This process and its descendants."""
        pids = [self.proc.pid]
        i = 0
        while i < len(pids):
            pid = pids[i]
            i += 1
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    children = (task / "children").read_text().split()
                    pids.extend(int(c) for c in children if int(c) not in pids)
        return pids


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a live process (VmHWM), KiB; 0 if gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def vm_rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux: "5" > /proc/<pid>/clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def self_peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


def _process_jiffies() -> dict[int, tuple[str, int]]:
    """pid -> (command name, utime + stime) for every live process."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            rest = text[text.rindex(")") + 2 :].split()
            out[int(entry.name)] = (name, int(rest[11]) + int(rest[12]))
    return out


def _descendants(root: int, table: dict[int, int]) -> set[int]:
    found = {root}
    changed = True
    while changed:
        changed = False
        for pid, ppid in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = (entry / "stat").read_text()
                out[int(entry.name)] = int(text[text.rindex(")") + 2 :].split()[1])
    return out


class CpuMonitor:
    """Where the machine's CPU went during a measurement: this benchmark's processes, the
    database and Redis, and everything else (e.g. other people's test runs on a shared box).

    Processes that exited during the window count as "other"; it is an estimate."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self._start_busy = _busy_jiffies()
        self._start = _process_jiffies()
        self._wall = time.monotonic()
        self._load = os.getloadavg()[0]

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self._wall
        busy = _busy_jiffies() - self._start_busy
        now = _process_jiffies()
        ours = _descendants(os.getpid(), _parents())
        groups = {"bench": 0, "postgres": 0, "redis": 0}
        for pid, (name, jiffies) in now.items():
            delta = jiffies - self._start.get(pid, (name, 0))[1]
            if pid in ours:
                groups["bench"] += delta
            elif name.startswith("postgres"):
                groups["postgres"] += delta
            elif name.startswith("redis"):
                groups["redis"] += delta
        other = max(0, busy - sum(groups.values()))
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "cpu_busy_pct": round(100 * busy / self.hz / wall / cores, 1) if wall else None,
            **{f"{k}_cpu_s": round(v / self.hz, 2) for k, v in groups.items()},
            "other_cpu_s": round(other / self.hz, 2),
            "other_cores_avg": round(other / self.hz / wall, 2) if wall else None,
            "loadavg_1m_start": round(self._load, 2),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        }


class Sandbox(Process):
    """The Exotel stand-in in its own process (so it never shares a GIL with what it measures)."""

    def __init__(self, name: str = "sandbox", **options: Any) -> None:
        argv = [PYTHON, "-m", "django_exotel_sms.sandbox", "--host", HOST, "--port", "0"]
        for key, value in options.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, list):
                for item in value:
                    argv += [flag, str(item)]
            else:
                argv += [flag, str(value)]
        super().__init__(name, argv)
        deadline = time.monotonic() + 20
        url = None
        while url is None:
            match = re.search(r"listening on (http://\S+)", self.log_text())
            if match:
                url = match.group(1)
            elif not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start:\n{self.log_text()}")
            else:
                time.sleep(0.05)
        self.url = url
        from django_exotel_sms.sandbox import SandboxControl

        self.control = SandboxControl(url, timeout=120)
        self.control.wait_until_up()


class Worker(Process):
    """``celery -A bench.celery_app worker`` with the current EXOTEL_SMS overrides."""

    def __init__(self, name: str = "w1", concurrency: int = 2) -> None:
        argv = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "-l",
            "warning",
            "-P",
            "prefork",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        super().__init__(f"worker-{name}", argv, {"DJANGO_SETTINGS_MODULE": "bench.settings"})
        self.node = name

    def wait_ready(self, timeout: float = 60.0) -> None:
        from bench.celery_app import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker {self.node} exited:\n{self.log_text()}")
            replies = app.control.ping(timeout=0.5)
            if any(name.startswith(f"{self.node}@") for reply in replies for name in reply):
                return
        raise RuntimeError(f"worker {self.node} not ready after {timeout} s:\n{self.log_text()}")

    def reset_peak_rss(self) -> dict[str, int]:
        """Start peak measurement now; returns the current RSS of main and largest child."""
        pids = self.tree_pids()
        for pid in pids:
            reset_peak_rss(pid)
        return {
            "main": vm_rss_kib(pids[0]),
            "max_child": max((vm_rss_kib(p) for p in pids[1:]), default=0),
        }

    def peak_rss_kib(self) -> dict[str, int]:
        """VmHWM of the main process and the largest pool child, KiB."""
        pids = self.tree_pids()
        main = vm_hwm_kib(pids[0])
        children = [vm_hwm_kib(p) for p in pids[1:]]
        return {"main": main, "max_child": max(children, default=0), "children": len(children)}


class Gunicorn(Process):
    """gunicorn serving bench.wsgi with a given urlconf."""

    def __init__(
        self,
        name: str,
        urlconf: str = "bench.urls",
        workers: int = 4,
        worker_class: str = "sync",
        threads: int = 1,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        argv = [
            PYTHON,
            "-m",
            "gunicorn",
            "bench.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--threads",
            str(threads),
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "--timeout",
            "60",
        ]
        super().__init__(name, argv, {"BENCH_URLCONF": urlconf})
        self.url = f"http://{HOST}:{self.port}"
        self.settings = {"workers": workers, "worker_class": worker_class, "threads": threads}
        import requests

        def up() -> bool:
            if not self.alive():
                raise RuntimeError(f"gunicorn {name} exited:\n{self.log_text()}")
            try:
                requests.get(f"{self.url}/exotel/", timeout=1)
                return True
            except requests.RequestException:
                return False

        if not wait_until(up, 30, 0.1):
            raise RuntimeError(f"gunicorn {name} did not come up:\n{self.log_text()}")


def require_gunicorn() -> None:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        sys.exit(
            "gunicorn is not installed in this virtualenv; install it with "
            "`.venv/bin/pip install gunicorn` (the benchmarks serve callbacks with it)."
        )


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            process.stop()


# -- rounds -----------------------------------------------------------------------------------


def rotated(items: Sequence[Any], round_: int) -> list[Any]:
    """``items`` starting at position ``round_``: over rounds none is always first or last."""
    shift = round_ % len(items) if items else 0
    return list(items[shift:]) + list(items[:shift])


def spread(values: Sequence[float]) -> str:
    """min-max of a measurement over rounds, for tables beside the median."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"
