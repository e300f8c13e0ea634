"""A bulk with suppressed recipients: 100,000 numbers, 10% on the suppression list.

    python bench/suppressed_send.py [--n 100000] [--share 0.1] [--latency 0.02] [--concurrency 2]

Against the local Exotel stand-in (its own process) with a real Celery worker, on PostgreSQL
and the Redis broker, the same public call twice in one run:

* baseline: ``SmsMessage.objects.send_bulk(to=[...], body=...)`` to ``n`` numbers, none
  suppressed;
* suppressed: the same to ``n`` other numbers, ``share`` of them on the suppression list
  (one in ten by default, spread through the batch);

each timed from the call until no message is left pending or submitting. Checked: exactly
the others reached the stand-in, each once; every suppressed number is saved ``suppressed``
(``opt_out``) and none reached it. Database work: queries per 100-message chunk saved and
sent, measured in this process with and without the share suppressed.

Target (issue 13): sending costs the same queries per 100-row chunk with and without
suppressions; saving a fixed few more per chunk holding refused rows, never one per number;
exactly the others sent.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

BODY = "Big sale today: 20% off everything. Reply STOP to opt out."


def _suppress(numbers: list[str], share: float) -> set[str]:
    from django_exotel_sms.models import Suppression

    every = max(1, round(1 / share)) if share else 0
    chosen = numbers[::every] if every else []
    Suppression.objects.bulk_create(
        [Suppression(number=n, reason="opt_out", source="bench") for n in chosen],
        batch_size=5000,
    )
    return set(chosen)


# -- database work per chunk, in this process --------------------------------------------------


def _queries(size: int, start: int, share: float) -> dict[str, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_exotel_sms import sending
    from django_exotel_sms.models import SmsMessage

    # Send chunks are counted over the rows actually sent: ``size`` of them, plus the share.
    sendable = common.numbers(size, start=start)
    extra = common.numbers(round(size * share / (1 - share)), start=start + 500_000)
    _suppress(extra, 1.0)
    # Spread through the batch, as in a real list: every saved chunk holds its share.
    targets = list(sendable)
    step = len(sendable) // max(len(extra), 1) + 1
    for j, number in enumerate(extra):
        targets.insert(j * step, number)
    with CaptureQueriesContext(connection) as saved:
        batch = SmsMessage.objects.send_bulk(to=targets, body=BODY)
    common.flush_redis()  # the tasks it enqueued: this process sends the batch itself
    with CaptureQueriesContext(connection) as sent:
        outcome = sending.deliver_batch(batch.pk)
    return {
        "recipients": len(targets),
        "suppressed": len(extra),
        "chunks_sent": outcome.requests,
        "save_queries": len(saved.captured_queries),
        "send_queries": len(sent.captured_queries),
    }


def query_counts(size: int, share: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for label, s, base in (("none", 0.0, 8_000_000), ("suppressed", share, 8_200_000)):
        full = _queries(size, base, s)
        half = _queries(size // 2, base + 100_000, s)
        chunks = max(full["chunks_sent"] - half["chunks_sent"], 1)
        result[label] = {
            **full,
            "send_queries_per_chunk": round(
                (full["send_queries"] - half["send_queries"]) / chunks, 2
            ),
            # Saving chunks all recipients, 100 at a time.
            "save_queries_per_chunk": round(
                (full["save_queries"] - half["save_queries"])
                / max(-(-full["recipients"] // 100) - -(-half["recipients"] // 100), 1),
                2,
            ),
        }
    return result


# -- through a worker ---------------------------------------------------------------------------


def run(label: str, n: int, share: float, start: int, sandbox: common.Sandbox, timeout: float):
    from django_exotel_sms import status
    from django_exotel_sms.models import SmsMessage

    common.truncate_tables()
    sandbox.control.reset()
    targets = common.numbers(n, start=start)
    blocked = _suppress(targets, share)
    monitor = common.CpuMonitor()
    started = time.perf_counter()
    batch = SmsMessage.objects.send_bulk(to=targets, body=BODY)
    saved = time.perf_counter()
    open_ = SmsMessage.objects.filter(
        batch_id=batch.pk, status__in=(status.PENDING, status.SUBMITTING)
    )
    done = common.wait_until(lambda: not open_.exists(), timeout, interval=0.1)
    finished = time.perf_counter()
    cpu = monitor.stop()
    statuses = dict(
        Counter(SmsMessage.objects.filter(batch=batch).values_list("status", flat=True))
    )
    counts = sandbox.control.recipients()
    suppressed_ok = SmsMessage.objects.filter(
        batch=batch, status=status.SUPPRESSED, status_reason="opt_out"
    ).count()
    elapsed = finished - started
    return {
        "label": label,
        "recipients": n,
        "suppressed_numbers": len(blocked),
        "done": done,
        "seconds": round(elapsed, 3),
        "save_seconds": round(saved - started, 3),
        "send_seconds": round(finished - saved, 3),
        "recipients_per_s": round(n / elapsed, 1),
        "sent_per_s": round((n - len(blocked)) / elapsed, 1),
        "statuses": statuses,
        "saved_suppressed_opt_out": suppressed_ok,
        "reached_exotel": len(counts),
        "suppressed_that_reached_exotel": sum(1 for number in counts if number in blocked),
        "sent_twice": sum(1 for c in counts.values() if c > 1),
        "exactly_the_others_once": set(counts) == set(targets) - blocked
        and all(c == 1 for c in counts.values()),
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="recipients per batch")
    parser.add_argument("--share", type=float, default=0.1, help="share suppressed")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (-c)")
    parser.add_argument("--query-batch", type=int, default=1_000, help="messages for query counts")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per batch, seconds")
    parser.add_argument("--output", default="suppressed_send", help="results/<output>.json")
    args = parser.parse_args()

    sandbox = common.Sandbox("suppressed-sandbox", latency=args.latency, callback_delay=0.5)
    worker: common.Worker | None = None
    try:
        common.setup_django({"BASE_URL": sandbox.url, "BATCH_PARALLELISM": args.concurrency})
        common.flush_redis()
        common.truncate_tables()
        common.say(f"queries per chunk ({args.query_batch} messages, in-process)")
        queries = query_counts(args.query_batch, args.share)
        common.flush_redis()
        worker = common.Worker("suppressed", concurrency=args.concurrency)
        worker.wait_ready()
        runs = {}
        for label, share, start in (("baseline", 0.0, 0), ("suppressed", args.share, 1_000_000)):
            common.say(f"{label}: {args.n:,} recipients, {share:.0%} suppressed")
            runs[label] = run(label, args.n, share, start, sandbox, args.timeout)
            common.say(f"  {runs[label]['seconds']} s, {runs[label]['statuses']}")
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
        common.flush_redis()

    base, mine = runs["baseline"], runs["suppressed"]
    rows = [
        [
            r["label"],
            r["recipients"],
            r["suppressed_numbers"],
            r["reached_exotel"],
            r["seconds"],
            r["save_seconds"],
            r["recipients_per_s"],
            r["cpu"]["other_cores_avg"],
        ]
        for r in (base, mine)
    ]
    common.print_table(
        f"{args.n:,} recipients, {args.share:.0%} suppressed vs none ({args.latency} s latency)",
        ["batch", "recipients", "suppressed", "sent", "s", "save s", "recipients/s", "other"],
        rows,
    )
    common.print_table(
        f"Queries ({args.query_batch} recipients, in-process)",
        ["queries", "save per chunk", "send per chunk"],
        [
            [label, q["save_queries_per_chunk"], q["send_queries_per_chunk"]]
            for label, q in queries.items()
        ],
    )
    summary = {
        "time_suppressed_per_baseline": round(mine["seconds"] / base["seconds"], 3),
        "exactly_the_others_once": mine["exactly_the_others_once"],
        "suppressed_that_reached_exotel": mine["suppressed_that_reached_exotel"],
        "send_queries_per_chunk_same": queries["none"]["send_queries_per_chunk"]
        == queries["suppressed"]["send_queries_per_chunk"],
    }
    print(summary)
    path = common.write_result(
        args.output, {"args": vars(args), "queries": queries, "runs": runs, "summary": summary}
    )
    common.say(f"wrote {path}")


if __name__ == "__main__":
    main()
