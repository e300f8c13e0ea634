"""Peak memory of the enqueuing process and of the worker, for 10,000 vs 100,000 recipients.

    python bench/memory.py [--sizes 10000,100000] [--kinds static,dynamic] [--latency 0.02]

For each size and kind, on an empty database: a fresh Celery worker (``-c 2``) is started
and, once idle, its peak RSS counters (``VmHWM``) are reset; a fresh subprocess then calls
``send_bulk`` with the recipients coming from a generator (never a list), resetting its own
``VmHWM`` right before the call; the worker sends the whole batch to the local Exotel
stand-in. Reported: the enqueuing process's RSS before and its peak during ``send_bulk``,
and the worker's idle RSS and peaks (main process, largest pool child) during the work.

Target: the 100,000-recipient peaks no more than 10% above the 10,000-recipient ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

STATIC_BODY = "Big sale today: 20% off everything. Reply STOP to opt out."


def child_enqueue(kind: str, n: int) -> None:
    """Runs in a fresh process: send_bulk from a generator; print JSON to stdout."""
    common.setup_django(migrate=False, overrides=None)
    from django.db import connection

    from django_exotel_sms.models import SmsMessage

    connection.ensure_connection()
    import gc

    gc.collect()
    lifetime_before = common.self_peak_rss_kib()
    reset = common.reset_peak_rss(os.getpid())
    before = common.vm_rss_kib(os.getpid())
    started = time.perf_counter()
    if kind == "static":
        batch = SmsMessage.objects.send_bulk(to=common.number_stream(n), body=STATIC_BODY)
    else:

        def messages() -> Iterator[dict[str, str]]:
            for i, number in enumerate(common.number_stream(n)):
                yield {"to": number, "body": f"Dear customer {i}, order #{100000 + i} shipped."}

        batch = SmsMessage.objects.send_bulk(messages=messages())
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "batch": batch.pk,
                "total": batch.total,
                "rss_before_kib": before,
                # VmHWM reset just before the call: the peak while send_bulk ran.
                "peak_rss_kib": common.vm_hwm_kib(os.getpid()) if reset else None,
                "peak_reset_supported": reset,
                "lifetime_peak_before_kib": lifetime_before,
                "lifetime_peak_kib": common.self_peak_rss_kib(),
                "seconds": round(elapsed, 2),
            }
        )
    )


def run_size(kind: str, n: int, sandbox: common.Sandbox, timeout: float) -> dict[str, Any]:
    from django_exotel_sms.models import SmsMessage

    common.truncate_tables()
    common.flush_redis()
    sandbox.control.reset()
    worker = common.Worker(f"mem-{kind}-{n}", concurrency=2)
    try:
        worker.wait_ready()
        time.sleep(1.0)
        idle = worker.reset_peak_rss()
        common.say(f"{kind} {n:,}: enqueuing in a fresh process")
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--child-enqueue", kind, "--n", str(n)],
            cwd=common.ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"enqueue child failed:\n{proc.stderr[-4000:]}")
        enqueue = json.loads(proc.stdout.strip().splitlines()[-1])
        common.say(
            f"  enqueued in {enqueue['seconds']} s; peak {enqueue['peak_rss_kib'] / 1024:.0f} MiB"
        )
        left = SmsMessage.objects.filter(batch_id=enqueue["batch"], sid__isnull=True)
        done = common.wait_until(lambda: not left.exists(), timeout, interval=0.5)
        elapsed = time.perf_counter() - started
        peak = worker.peak_rss_kib()
    finally:
        worker.stop()
    counts = sandbox.control.recipients()
    common.say(f"  sent in {elapsed:.1f} s; worker child peak {peak['max_child'] / 1024:.0f} MiB")
    return {
        "kind": kind,
        "recipients": n,
        "enqueue": enqueue,
        "worker_idle_rss_kib": idle,
        "worker_peak_kib": peak,
        "worker_seconds": round(elapsed, 1),  # from the send_bulk call until every Sid
        "done": done,
        "accepted_by_sandbox": len(counts),
        "sent_twice": sum(1 for c in counts.values() if c > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated recipient counts")
    parser.add_argument(
        "--kinds", default="static,dynamic", help="static and/or dynamic, comma-separated"
    )
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per size, seconds")
    parser.add_argument("--child-enqueue", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_enqueue:
        child_enqueue(args.child_enqueue, args.n)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k.strip() for k in args.kinds.split(",")]
    sandbox = common.Sandbox("memory-sandbox", latency=args.latency, callback_delay=0.5)
    runs: list[dict[str, Any]] = []
    try:
        common.setup_django({"BASE_URL": sandbox.url})
        for kind in kinds:
            for n in sizes:
                runs.append(run_size(kind, n, sandbox, args.timeout))
    finally:
        sandbox.stop()
        common.flush_redis()

    rows = []
    summary: dict[str, Any] = {}
    for kind in kinds:
        mine = [r for r in runs if r["kind"] == kind]
        small, large = mine[0], mine[-1]

        def growth(a: float, b: float) -> float:
            return round(100.0 * (b - a) / a, 1) if a else float("nan")

        summary[kind] = {
            "enqueue_growth_pct": growth(
                small["enqueue"]["peak_rss_kib"], large["enqueue"]["peak_rss_kib"]
            ),
            "worker_child_growth_pct": growth(
                small["worker_peak_kib"]["max_child"], large["worker_peak_kib"]["max_child"]
            ),
            "worker_main_growth_pct": growth(
                small["worker_peak_kib"]["main"], large["worker_peak_kib"]["main"]
            ),
        }
        summary[kind]["target_met"] = all(
            v <= 10 for k, v in summary[kind].items() if k.endswith("_pct")
        )
        for r in mine:
            rows.append(
                [
                    kind,
                    r["recipients"],
                    round(r["enqueue"]["rss_before_kib"] / 1024, 1),
                    round(r["enqueue"]["peak_rss_kib"] / 1024, 1),
                    r["enqueue"]["seconds"],
                    round(r["worker_idle_rss_kib"]["max_child"] / 1024, 1),
                    round(r["worker_peak_kib"]["max_child"] / 1024, 1),
                    round(r["worker_peak_kib"]["main"] / 1024, 1),
                    r["worker_seconds"],
                    r["sent_twice"],
                ]
            )
    common.print_table(
        "RSS (MiB); peaks are VmHWM, reset right before the work",
        [
            "kind",
            "recipients",
            "enqueue: before",
            "enqueue: peak",
            "enqueue s",
            "worker child: idle",
            "worker child: peak",
            "worker main: peak",
            "all Sids s",
            "sent twice",
        ],
        rows,
    )
    common.print_table(
        "Growth, largest vs smallest size (target <= 10%)",
        ["kind", "enqueuing process", "worker child", "worker main", "result"],
        [
            [
                k,
                f"{v['enqueue_growth_pct']}%",
                f"{v['worker_child_growth_pct']}%",
                f"{v['worker_main_growth_pct']}%",
                "met" if v["target_met"] else "MISSED",
            ]
            for k, v in summary.items()
        ],
    )
    common.write_result("memory", {"args": vars(args), "runs": runs, "summary": summary})


if __name__ == "__main__":
    main()
