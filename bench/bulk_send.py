"""Bulk sending speed: our public API and a real Celery worker, beside the naive way and the floor.

    python bench/bulk_send.py [--n 10000] [--latency 0.02] [--naive-n 1000] [--concurrency 2]

Against the local Exotel stand-in (its own process) with a fixed added latency per request,
on PostgreSQL and the Redis broker:

* ours, same text: ``SmsMessage.objects.send_bulk(to=[...], body=...)``; ours, text per
  recipient: ``send_bulk(messages=[...])``; each timed from the call until every message has
  its Sid (the worker is started and idle beforehand);
* naive: one ``requests.post`` per message, as in Exotel's own Python example;
* floor: the same 100-recipient requests our worker makes, sent by a bare script with a
  ``requests.Session`` and no database, one stream and as many streams as worker processes;
* database work: queries per 100-message chunk (``deliver_batch`` in this process under
  ``CaptureQueriesContext``) and per 100 messages saved by ``send_bulk``.

Targets: ours >= 50x naive; floor time / our time within 2x (ours >= half the floor's rate).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SENDER = "EXOTEL"
ENTITY = "1101000000000000001"
STATIC_BODY = "Big sale today: 20% off everything. Reply STOP to opt out."


def dynamic_body(i: int) -> str:
    return f"Dear customer {i}, your order #{100000 + i} has shipped and arrives tomorrow."


# -- database work per chunk, in this process --------------------------------------------------


def _measure(kind: str, size: int, start: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_exotel_sms import sending
    from django_exotel_sms.models import SmsMessage

    targets = common.numbers(size, start=start)
    with CaptureQueriesContext(connection) as saved:
        if kind == "static":
            batch = SmsMessage.objects.send_bulk(to=targets, body=STATIC_BODY)
        else:
            batch = SmsMessage.objects.send_bulk(
                messages=[{"to": n, "body": dynamic_body(i)} for i, n in enumerate(targets)]
            )
    common.flush_redis()  # the tasks it enqueued: this process sends the batch itself
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as sent:
        outcome = sending.deliver_batch(batch.pk)
    elapsed = time.perf_counter() - started
    kinds = Counter(q["sql"].split(None, 1)[0].upper() for q in sent.captured_queries)
    return {
        "messages": size,
        "chunks": outcome.requests,
        "accepted": outcome.accepted,
        "left_without_sid": SmsMessage.objects.filter(batch=batch, sid__isnull=True).count(),
        "send_queries": len(sent.captured_queries),
        "send_queries_by_kind": dict(kinds),
        "save_queries": len(saved.captured_queries),
        "in_process_seconds": round(elapsed, 3),
        "ms_per_chunk_in_process": round(1000 * elapsed / max(outcome.requests, 1), 1),
    }


def query_counts(size: int) -> dict[str, Any]:
    """Queries for a ``size`` batch and for half of it: the difference per chunk is the cost
    of one more chunk; what is left is the fixed cost of a task run."""
    result: dict[str, Any] = {}
    for n, kind in enumerate(("static", "dynamic")):
        full = _measure(kind, size, 9_000_000 + 200_000 * n)
        half = _measure(kind, size // 2, 9_100_000 + 200_000 * n)
        extra_chunks = max(full["chunks"] - half["chunks"], 1)
        per_chunk = (full["send_queries"] - half["send_queries"]) / extra_chunks
        result[kind] = {
            **full,
            "send_queries_per_chunk": round(per_chunk, 2),
            "send_queries_fixed_per_run": round(
                full["send_queries"] - per_chunk * full["chunks"], 2
            ),
            "save_queries_per_100": round(
                (full["save_queries"] - half["save_queries"]) / ((size - size // 2) / 100), 2
            ),
            "save_queries_fixed": round(
                full["save_queries"]
                - (full["save_queries"] - half["save_queries"]) / (size - size // 2) * size,
                2,
            ),
        }
    return result


# -- ours ---------------------------------------------------------------------------------------


def run_ours(kind: str, n: int, sandbox: common.Sandbox, timeout: float) -> dict[str, Any]:
    from django_exotel_sms.models import SmsMessage

    common.truncate_tables()
    sandbox.control.reset()
    targets = common.numbers(n)
    if kind == "static":
        payload: dict[str, Any] = {"to": targets, "body": STATIC_BODY}
    else:
        payload = {"messages": [{"to": t, "body": dynamic_body(i)} for i, t in enumerate(targets)]}
    monitor = common.CpuMonitor()
    started = time.perf_counter()
    batch = SmsMessage.objects.send_bulk(**payload)
    saved = time.perf_counter()

    def left() -> int:
        return SmsMessage.objects.filter(batch_id=batch.pk, sid__isnull=True).count()

    done = common.wait_until(lambda: left() == 0, timeout, interval=0.05)
    finished = time.perf_counter()
    cpu = monitor.stop()
    statuses = dict(
        Counter(SmsMessage.objects.filter(batch=batch).values_list("status", flat=True))
    )
    counts = sandbox.control.recipients()
    posts = [r for r in sandbox.control.requests() if r["method"] == "POST"]
    elapsed = finished - started
    return {
        "kind": kind,
        "messages": n,
        "done": done,
        "seconds": round(elapsed, 3),
        "save_seconds": round(saved - started, 3),
        "send_seconds": round(finished - saved, 3),
        "messages_per_s": round(n / elapsed, 1),
        "requests": len(posts),
        "statuses": statuses,
        "recipients_sent_twice": sum(1 for c in counts.values() if c > 1),
        "left_without_sid": 0 if done else left(),
        "cpu": cpu,
    }


# -- the naive way and the floor --------------------------------------------------------------


def run_naive(n: int, sandbox: common.Sandbox) -> dict[str, Any]:
    """Exotel's own Python example, once per message: a new connection every time."""
    import requests

    sandbox.control.reset()
    host = sandbox.url.split("://", 1)[1]
    url = f"http://sandboxkey:sandboxtoken@{host}/v1/Accounts/sandbox/Sms/send"
    statuses: Counter[int] = Counter()
    monitor = common.CpuMonitor()
    started = time.perf_counter()
    for i, number in enumerate(common.numbers(n, start=5_000_000)):
        data = {"From": SENDER, "To": number, "Body": STATIC_BODY, "DltEntityId": ENTITY}
        if i % 2:
            data["Body"] = dynamic_body(i)
        statuses[requests.post(url, data=data, timeout=30).status_code] += 1
    elapsed = time.perf_counter() - started
    return {
        "messages": n,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed, 1),
        "http_statuses": dict(statuses),
        "cpu": monitor.stop(),
    }


def _floor_form(kind: str, chunk: list[str], offset: int) -> list[tuple[str, str]]:
    if kind == "static":
        form = [("From", SENDER)]
        form += [("To[]", number) for number in chunk]
        form += [("Body", STATIC_BODY), ("DltEntityId", ENTITY)]
        return form
    form = []
    for i, number in enumerate(chunk):
        form += [
            (f"Messages[{i}][To]", number),
            (f"Messages[{i}][Body]", dynamic_body(offset + i)),
            (f"Messages[{i}][From]", SENDER),
        ]
    form.append(("DltEntityId", ENTITY))
    return form


def run_floor(kind: str, n: int, streams: int, sandbox: common.Sandbox) -> dict[str, Any]:
    """The HTTP work alone: n/100 requests of 100 recipients, ``streams`` at a time."""
    import requests

    sandbox.control.reset()
    endpoint = "Sms/send.json" if kind == "static" else "Sms/bulksend.json"
    url = f"{sandbox.url}/v1/Accounts/sandbox/{endpoint}"
    targets = common.numbers(n, start=2_000_000)
    chunks = [(i, targets[i : i + 100]) for i in range(0, n, 100)]
    # Built beforehand: the floor is the HTTP exchange, not string building.
    forms = [_floor_form(kind, chunk, offset) for offset, chunk in chunks]
    lock = threading.Lock()
    statuses: Counter[int] = Counter()

    def stream(index: int) -> None:
        with requests.Session() as session:
            session.auth = ("sandboxkey", "sandboxtoken")
            session.headers["Accept"] = "application/json"
            for form in forms[index::streams]:
                code = session.post(url, data=form, timeout=60).status_code
                with lock:
                    statuses[code] += 1

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(streams)]
    monitor = common.CpuMonitor()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "kind": kind,
        "streams": streams,
        "messages": n,
        "requests": len(forms),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(n / elapsed, 1),
        "http_statuses": dict(statuses),
        "cpu": monitor.stop(),
    }


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="recipients per scenario")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--naive-n", type=int, default=1_000, help="messages sent the naive way")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (-c)")
    parser.add_argument("--query-batch", type=int, default=1_000, help="messages for query counts")
    parser.add_argument("--timeout", type=float, default=600.0, help="per scenario, seconds")
    parser.add_argument("--output", default="bulk_send", help="results/<output>.json")
    args = parser.parse_args()

    sandbox = common.Sandbox("bulk-sandbox", latency=args.latency, callback_delay=0.5)
    worker: common.Worker | None = None
    try:
        common.setup_django({"BASE_URL": sandbox.url, "BATCH_PARALLELISM": args.concurrency})
        common.flush_redis()
        common.truncate_tables()
        common.say(f"queries per chunk ({args.query_batch} messages, in-process)")
        queries = query_counts(args.query_batch)
        common.flush_redis()

        worker = common.Worker("bulk", concurrency=args.concurrency)
        worker.wait_ready()
        ours = {}
        for kind in ("static", "dynamic"):
            common.say(f"ours, {kind}: {args.n:,} messages")
            ours[kind] = run_ours(kind, args.n, sandbox, args.timeout)
            common.say(f"  {ours[kind]['messages_per_s']:,} msg/s in {ours[kind]['seconds']} s")
        worker.stop()
        worker = None

        common.say(f"naive: {args.naive_n:,} x requests.post")
        naive = run_naive(args.naive_n, sandbox)
        floors: dict[str, dict[str, Any]] = {}
        for kind in ("static", "dynamic"):
            for streams in sorted({1, args.concurrency}):
                common.say(f"floor, {kind}, {streams} stream(s)")
                floors[f"{kind}/{streams}"] = run_floor(kind, args.n, streams, sandbox)
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
        common.flush_redis()

    rows = []
    summary: dict[str, Any] = {}
    for kind in ("static", "dynamic"):
        mine = ours[kind]
        floor = floors[f"{kind}/{args.concurrency}"]
        floor_1 = floors[f"{kind}/1"]
        vs_naive = mine["messages_per_s"] / naive["messages_per_s"]
        vs_floor = floor["messages_per_s"] / mine["messages_per_s"]
        summary[kind] = {
            "ours_per_naive": round(vs_naive, 1),
            "floor_per_ours": round(vs_floor, 2),
            "floor_1_stream_per_ours": round(floor_1["messages_per_s"] / mine["messages_per_s"], 2),
            "target_naive_met": vs_naive >= 50,
            "target_floor_met": vs_floor <= 2,
        }
        rows += [
            [
                f"ours ({kind})",
                mine["messages"],
                mine["seconds"],
                mine["messages_per_s"],
                "1.0x",
                mine["cpu"]["other_cores_avg"],
            ],
            [
                f"floor ({kind}, {args.concurrency} streams)",
                floor["messages"],
                floor["seconds"],
                floor["messages_per_s"],
                f"{floor['messages_per_s'] / mine['messages_per_s']:.2f}x",
                floor["cpu"]["other_cores_avg"],
            ],
            [
                f"floor ({kind}, 1 stream)",
                floor_1["messages"],
                floor_1["seconds"],
                floor_1["messages_per_s"],
                f"{floor_1['messages_per_s'] / mine['messages_per_s']:.2f}x",
                floor_1["cpu"]["other_cores_avg"],
            ],
        ]
    rows.append(
        [
            "naive (requests.post each)",
            naive["messages"],
            naive["seconds"],
            naive["messages_per_s"],
            f"{naive['messages_per_s'] / ours['static']['messages_per_s']:.3f}x",
            naive["cpu"]["other_cores_avg"],
        ]
    )
    common.print_table(
        f"Bulk send, {args.latency * 1000:.0f} ms added latency, worker -c {args.concurrency}",
        ["path", "messages", "seconds", "msg/s", "rate vs ours", "other load (cores)"],
        rows,
    )
    common.print_table(
        "Ratios and targets",
        ["scenario", "ours/naive", "target >= 50x", "floor/ours", "target <= 2x"],
        [
            [
                kind,
                f"{summary[kind]['ours_per_naive']}x",
                "met" if summary[kind]["target_naive_met"] else "MISSED",
                f"{summary[kind]['floor_per_ours']}x",
                "met" if summary[kind]["target_floor_met"] else "MISSED",
            ]
            for kind in ("static", "dynamic")
        ],
    )
    common.print_table(
        "Database work",
        [
            "batch",
            "chunks",
            "queries/chunk",
            "fixed/run",
            "ms/chunk (1 process)",
            "queries/100 saved",
        ],
        [
            [
                k,
                v["chunks"],
                v["send_queries_per_chunk"],
                v["send_queries_fixed_per_run"],
                v["ms_per_chunk_in_process"],
                v["save_queries_per_100"],
            ]
            for k, v in queries.items()
        ],
    )
    for kind, mine in ours.items():
        print(
            f"ours ({kind}): saving {mine['save_seconds']} s + sending {mine['send_seconds']} s; "
            f"{mine['requests']} requests; statuses {mine['statuses']}; "
            f"recipients sent twice: {mine['recipients_sent_twice']}"
        )
    common.write_result(
        args.output,
        {
            "args": vars(args),
            "ours": ours,
            "naive": naive,
            "floor": floors,
            "summary": summary,
            "queries": queries,
        },
    )


if __name__ == "__main__":
    main()
