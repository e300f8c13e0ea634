"""Scheduled sending: released and drained as fast as an immediate bulk, with no broker memory.

    python bench/scheduling.py [--sizes 10000,100000] [--latency 0.02] [--release-interval 1]

Against the local Exotel stand-in (its own process, fixed added latency) on PostgreSQL and
the Redis broker, with one Celery worker (``-c 2``) that also runs the beat (``-B``) with
the ``release_due`` entry every ``--release-interval`` seconds. For each size, on an empty
database:

* **immediate**: ``send_bulk(to=[...], body=...)``; drain time from the call's return (the
  rows are saved, the tasks enqueued) until every message has its Sid;
* **scheduled**: the same bulk with ``send_at`` a few seconds after the rows will have been
  saved (the immediate run's save time plus a margin); drain time from ``send_at`` until
  every message has its Sid -- so it includes the release delay (at most one beat
  interval).

The broker's footprint is sampled every 0.1 s from the ``send_bulk`` call until ``send_at``
(while the messages are scheduled): the number of keys in the broker's Redis database, the
length of the ``celery`` queue and the sum of ``MEMORY USAGE`` of its keys. The database's
own Redis db is used for this (``BENCH_BROKER_URL``), so other users of the instance do
not count.

Targets: scheduled drain rate within 10% of the immediate one at the largest size; broker
bytes while scheduled the same at every size (no task per scheduled message).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

BODY = "Your appointment is tomorrow at 10:00. Reply STOP to opt out."


def broker_url() -> str:
    return os.environ.get("BENCH_BROKER_URL", common.BROKER_URL)


def rate_url() -> str:
    return os.environ.get("BENCH_RATE_LIMIT_URL", common.RATE_URL)


def flush_own_redis() -> None:
    """Only the two Redis databases this run uses."""
    import redis

    for url in (broker_url(), rate_url()):
        redis.Redis.from_url(url).flushdb()


class BrokerSampler:
    """Samples the broker database's footprint in a thread until stopped."""

    def __init__(self) -> None:
        import redis

        self.client = redis.Redis.from_url(broker_url())
        self.peak = {"keys": 0, "queue_length": 0, "bytes": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        keys = list(self.client.scan_iter(count=1000))
        size = sum(self.client.memory_usage(k) or 0 for k in keys)
        queue = self.client.llen("celery")
        for name, value in (("keys", len(keys)), ("queue_length", queue), ("bytes", size)):
            self.peak[name] = max(self.peak[name], value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.1)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return dict(self.peak)


def _left(batch_id: int) -> int:
    from django_exotel_sms.models import SmsMessage

    return SmsMessage.objects.filter(batch_id=batch_id, sid__isnull=True).count()


def _outcome(batch_id: int, sandbox: common.Sandbox) -> dict[str, Any]:
    from django_exotel_sms.models import SmsMessage

    counts = sandbox.control.recipients()
    return {
        "statuses": dict(
            Counter(SmsMessage.objects.filter(batch_id=batch_id).values_list("status", flat=True))
        ),
        "recipients_sent_twice": sum(1 for c in counts.values() if c > 1),
        "recipients_sent": len(counts),
    }


def run_immediate(n: int, sandbox: common.Sandbox, timeout: float) -> dict[str, Any]:
    from django_exotel_sms.models import SmsMessage

    common.truncate_tables()
    sandbox.control.reset()
    monitor = common.CpuMonitor()
    started = time.perf_counter()
    batch = SmsMessage.objects.send_bulk(to=common.number_stream(n), body=BODY)
    saved = time.perf_counter()
    done = common.wait_until(lambda: _left(batch.pk) == 0, timeout, interval=0.05)
    finished = time.perf_counter()
    return {
        "messages": n,
        "done": done,
        "save_seconds": round(saved - started, 3),
        "drain_seconds": round(finished - saved, 3),
        "messages_per_s": round(n / (finished - saved), 1),
        **_outcome(batch.pk, sandbox),
        "cpu": monitor.stop(),
    }


def run_scheduled(
    n: int, sandbox: common.Sandbox, save_estimate: float, timeout: float
) -> dict[str, Any]:
    from django.utils import timezone

    from django_exotel_sms.models import SmsMessage

    common.truncate_tables()
    sandbox.control.reset()
    flush_own_redis()
    send_at = timezone.now() + timedelta(seconds=save_estimate * 1.5 + 5)
    sampler = BrokerSampler()
    started = time.perf_counter()
    batch = SmsMessage.objects.send_bulk(to=common.number_stream(n), body=BODY, send_at=send_at)
    saved = time.perf_counter()
    early = sandbox.control.recipients()
    wait = (send_at - timezone.now()).total_seconds()
    if wait < 0:
        raise RuntimeError("saving took longer than planned; raise the margin")
    time.sleep(wait)
    broker = sampler.stop()  # the footprint while the messages were only scheduled
    sent_before_due = len(early) + len(sandbox.control.recipients())
    monitor = common.CpuMonitor()
    due = time.perf_counter()
    done = common.wait_until(lambda: _left(batch.pk) == 0, timeout, interval=0.05)
    finished = time.perf_counter()
    return {
        "messages": n,
        "done": done,
        "save_seconds": round(saved - started, 3),
        "sent_before_due": sent_before_due,
        "drain_seconds": round(finished - due, 3),
        "messages_per_s": round(n / (finished - due), 1),
        "broker_while_scheduled": broker,
        **_outcome(batch.pk, sandbox),
        "cpu": monitor.stop(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--release-interval", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--output", default="scheduling")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    os.environ["TEST_BEAT_RELEASE_INTERVAL"] = str(args.release_interval)  # the worker's beat
    flush_own_redis()
    common.setup_django({"RATE_LIMIT_STORAGE": rate_url()})
    sandbox = common.Sandbox("scheduling-sandbox", latency=args.latency, callback_delay=0.5)
    common.set_overrides({"BASE_URL": sandbox.url, "RATE_LIMIT_STORAGE": rate_url()})
    beat_file = common.LOGS / "celerybeat-scheduling"
    worker = common.Process(
        "worker-scheduling",
        [
            common.PYTHON, "-m", "celery", "-A", "bench.celery_app", "worker",
            "-l", "warning", "-P", "prefork", "-c", str(args.concurrency),
            "-n", "sched@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-B", "-s", str(beat_file),
        ],
        {"DJANGO_SETTINGS_MODULE": "bench.settings"},
    )  # fmt: skip
    results: dict[str, Any] = {"release_interval": args.release_interval, "runs": []}
    with common.running(worker, sandbox):
        common.say("warming up the worker")
        from django_exotel_sms.models import SmsMessage

        warm = SmsMessage.objects.send_bulk(to=common.numbers(200, start=8_000_000), body=BODY)
        if not common.wait_until(lambda: _left(warm.pk) == 0, 120):
            raise RuntimeError(f"the worker does not send:\n{worker.log_text()}")
        for n in sizes:
            common.say(f"{n:,}: immediate")
            immediate = run_immediate(n, sandbox, args.timeout)
            common.say(f"{n:,}: scheduled")
            scheduled = run_scheduled(n, sandbox, immediate["save_seconds"], args.timeout)
            ratio = scheduled["messages_per_s"] / immediate["messages_per_s"]
            results["runs"].append(
                {
                    "messages": n,
                    "immediate": immediate,
                    "scheduled": scheduled,
                    "rate_ratio": round(ratio, 3),
                }
            )
    rows = [
        [
            f"{run['messages']:,}",
            run["immediate"]["messages_per_s"],
            run["scheduled"]["messages_per_s"],
            run["rate_ratio"],
            run["scheduled"]["sent_before_due"],
            run["scheduled"]["broker_while_scheduled"]["queue_length"],
            run["scheduled"]["broker_while_scheduled"]["bytes"],
            run["immediate"]["recipients_sent_twice"] + run["scheduled"]["recipients_sent_twice"],
            f"{run['immediate']['cpu']['other_cores_avg']}/"
            f"{run['scheduled']['cpu']['other_cores_avg']}",
        ]
        for run in results["runs"]
    ]
    common.print_table(
        "Scheduled vs immediate bulk (drain rate from due; broker while scheduled)",
        [
            "messages",
            "immediate msg/s",
            "scheduled msg/s",
            "ratio",
            "sent early",
            "broker queue",
            "broker bytes",
            "sent twice",
            "other load",
        ],
        rows,
    )
    common.write_result(args.output, results)


if __name__ == "__main__":
    main()
