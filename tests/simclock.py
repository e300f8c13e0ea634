"""A simulated clock that real worker processes honour (tests only).

The simulated time lives in one Redis key the test sets; it stands still until the test
moves it, so what a worker sees never depends on how fast the machine is. A worker
started with ``TEST_SIMCLOCK=<redis url>`` in its environment (``tests/celery_app.py``)
reads it through ``django.utils.timezone.now``, which is what the claim, the gate,
compose, ``release_due``, reconciliation and ``auto_now`` fields all call; the test
process patches the same function with the same reader.

Two things make a batch's run observable and steppable from the test, without sleeps:

* a claim gate: while it is on, each claim in the worker first takes a ticket the test
  grants, so the test decides how many chunks are claimed before it moves the clock;
* a log of every claim (simulated time, rows taken) and of every task the worker ran
  (name, simulated time, return value), in Redis lists the test reads.

Nothing here is part of the package: the worker's code runs unchanged, only its clock
is replaced and its claims are counted (and held at the gate) from outside.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import redis

ENV = "TEST_SIMCLOCK"
NOW = "tests:simclock:now"  # simulated time, POSIX seconds
GATE = "tests:simclock:gate"  # "1": every claim waits for a ticket
TICKETS = "tests:simclock:tickets"
CLAIMS = "tests:simclock:claims"  # JSON [simulated time, rows claimed] per claim
TASKS = "tests:simclock:tasks"  # JSON [task name, simulated time, return value] per run
GATE_TIMEOUT = 60.0  # a worker left at the gate (test gone) goes on after this
UTC = dt_timezone.utc


class SimClock:
    """The test's handle on the clock, the gate and the logs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = redis.Redis.from_url(url)
        self.redis.delete(NOW, GATE, TICKETS, CLAIMS, TASKS)

    # -- the clock --------------------------------------------------------------------
    def set(self, when: datetime) -> None:
        self.redis.set(NOW, repr(when.timestamp()))

    def now(self) -> datetime:
        return read(self.redis)

    # -- the claim gate ---------------------------------------------------------------
    def hold_claims(self) -> None:
        self.redis.set(TICKETS, 0)
        self.redis.set(GATE, "1")

    def grant(self, claims: int = 1) -> None:
        self.redis.incrby(TICKETS, claims)

    def open_gate(self) -> None:
        self.redis.delete(GATE)

    def waiting(self) -> bool:
        """Whether a worker is at the gate with no ticket left (tickets went below zero)."""
        return int(self.redis.get(TICKETS) or 0) < 0

    # -- what the worker did ----------------------------------------------------------
    def claims(self) -> list[tuple[datetime, int]]:
        return [(_at(t), n) for t, n in map(json.loads, self.redis.lrange(CLAIMS, 0, -1))]

    def task_runs(self, name: str) -> list[tuple[datetime, Any]]:
        runs = map(json.loads, self.redis.lrange(TASKS, 0, -1))
        return [(_at(t), value) for task, t, value in runs if task == name]


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def read(client: redis.Redis) -> datetime:
    value = client.get(NOW)
    if value is None:
        raise RuntimeError(f"{NOW} is not set: the test sets the clock before the worker runs")
    return _at(float(value))


# -- the worker side ----------------------------------------------------------------------

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ[ENV])
    return _client


def _take_ticket(client: redis.Redis) -> None:
    """Wait while the gate is on and no ticket is left; a ticket is one claim."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while client.get(GATE) and time.monotonic() < deadline:
        if client.decr(TICKETS) >= 0:
            return
        time.sleep(0.02)  # below zero tells the test that a claim waits here
        client.incr(TICKETS)


def _gated(claim: Callable[..., Any]) -> Callable[..., Any]:
    def gated_claim(*args: Any, **kwargs: Any) -> Any:
        client = _redis()
        _take_ticket(client)
        at = read(client).timestamp()  # the claim reads the same, standing, time
        result = claim(*args, **kwargs)
        client.rpush(CLAIMS, json.dumps([at, len(result.rows) if result else 0]))
        return result

    return gated_claim


def install() -> None:
    """In a worker started with ``TEST_SIMCLOCK``: its clock, claim gate and logs."""
    from celery import signals
    from django.utils import timezone

    timezone.now = lambda: read(_redis())  # type: ignore[assignment]

    @signals.worker_process_init.connect(weak=False)
    def gate_the_claim(**_: Any) -> None:
        from django_exotel_sms import sending

        sending._claim = _gated(sending._claim)  # type: ignore[assignment]

    @signals.task_postrun.connect(weak=False)
    def log_task(task: Any = None, retval: Any = None, **_: Any) -> None:
        entry = [task.name, read(_redis()).timestamp(), retval]
        _redis().rpush(TASKS, json.dumps(entry, default=str))
