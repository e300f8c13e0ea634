"""Status callback ingestion: our view behind gunicorn on PostgreSQL, beside a bare view.

    python bench/callbacks.py [--n 10000] [--concurrency 50] [--workers 4]

Messages are created beforehand (queued, with Sids, in batches of 100 as a bulk send leaves
them); each gets one "sent" callback on its batch's signed URL, as Exotel posts them. The
same requests then go to a bare Django view that only parses the form (``bench/bare_urls.py``),
served by the same gunicorn settings and middleware. Measured:

* closed loop: ``--concurrency`` connections posting as fast as answers come (throughput,
  and latency at that saturation);
* open loop: the same load paced at half of our measured throughput (latency when the
  server keeps up: service time rather than queueing);
* queries per callback: Django's test client in this process, under CaptureQueriesContext.

Targets: at least half the bare view's throughput; p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, loadgen

DATE_SENT = "2026-01-15 10:30:00"


def create_messages(n: int, tag: str) -> list[tuple[int, str, str, int]]:
    """n queued messages with Sids, 100 per batch: (batch pk, sid, to, message pk)."""
    from django.utils import timezone

    from django_exotel_sms import status
    from django_exotel_sms.models import SmsBatch, SmsMessage

    now = timezone.now()
    out: list[tuple[int, str, str, int]] = []
    offset = {"main": 0, "paced": 3_000_000, "warm": 4_000_000, "probe": 5_000_000}[tag]
    for start in range(0, n, 100):
        size = min(100, n - start)
        batch = SmsBatch.objects.create(
            kind=SmsBatch.KIND_STATIC, name=f"{tag}-{start}", total=size
        )
        rows = [
            SmsMessage(
                to=number,
                sender="EXOTEL",
                body="Big sale today",
                dlt_entity_id="1101000000000000001",
                batch=batch,
                sid=uuid.uuid4().hex,
                status=status.QUEUED,
                submitted_at=now,
            )
            for number in common.numbers(size, start=offset + start)
        ]
        for message in SmsMessage.objects.bulk_create(rows):
            out.append((batch.pk, str(message.sid), message.to, message.pk))
    return out


def callback_requests(messages: list[tuple[int, str, str, int]]) -> list[tuple[str, bytes]]:
    from django_exotel_sms import callbacks
    from django_exotel_sms.models import SmsBatch

    created = dict(
        SmsBatch.objects.filter(pk__in={m[0] for m in messages}).values_list("pk", "created_at")
    )
    tokens: dict[int, str] = {}
    requests = []
    for batch_pk, sid, to, _pk in messages:
        token = tokens.get(batch_pk) or tokens.setdefault(
            batch_pk, callbacks.make_token(callbacks.BATCH, batch_pk, created[batch_pk])
        )
        form = [
            ("SmsSid", sid),
            ("To", to),
            ("Status", "sent"),
            ("SmsUnits", "1"),
            ("DetailedStatus", "DELIVERED_TO_HANDSET"),
            ("DetailedStatusCode", "20005"),
            ("DateSent", DATE_SENT),
        ]
        requests.append((f"/exotel/status/{token}/", urlencode(form).encode()))
    return requests


def queries_per_callback() -> dict[str, Any]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    messages = create_messages(3, "probe")
    requests = callback_requests(messages)
    client = Client()
    result: dict[str, Any] = {}
    cases = {
        "first report (status moves)": requests[0],
        "duplicate of it (no change)": requests[0],
        "another message, same batch": requests[1],
    }
    for label, (path, body) in cases.items():
        with CaptureQueriesContext(connection) as ctx:
            response = client.post(path, body, content_type="application/x-www-form-urlencoded")
        kinds: dict[str, int] = {}
        for q in ctx.captured_queries:
            word = q["sql"].split(None, 1)[0].upper()
            kinds[word] = kinds.get(word, 0) + 1
        result[label] = {
            "status_code": response.status_code,
            "queries": len(ctx.captured_queries),
            "by_kind": kinds,
            "sql": [q["sql"][:160] for q in ctx.captured_queries],
        }
    return result


def serve_and_load(
    name: str,
    urlconf: str,
    requests: list[tuple[str, bytes]],
    warm: list[tuple[str, bytes]],
    paced: list[tuple[str, bytes]],
    args: argparse.Namespace,
    pace_rate: float | None,
) -> dict[str, Any]:
    server = common.Gunicorn(
        f"gunicorn-{name}",
        urlconf=urlconf,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
    )
    try:
        loadgen.closed_loop(server.url, warm, args.concurrency)  # imports, connections
        common.say(f"{name}: {len(requests):,} callbacks, {args.concurrency} connections")
        monitor = common.CpuMonitor()
        closed = loadgen.closed_loop(server.url, requests, args.concurrency)
        cpu = monitor.stop()
        rate = pace_rate or closed.summary()["per_s"] / 2
        common.say(f"{name}: {len(paced):,} callbacks paced at {rate:.0f}/s")
        opened = loadgen.open_loop(server.url, paced, rate, args.concurrency)
    finally:
        server.stop()
    return {
        "server": server.settings,
        "closed_loop": {**closed.summary(), "cpu": cpu},
        "open_loop": {**opened.summary(), "rate": round(rate, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="callbacks in the closed-loop run")
    parser.add_argument("--paced-n", type=int, default=3_000, help="callbacks in the paced run")
    parser.add_argument("--concurrency", type=int, default=50, help="connections at once")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    args = parser.parse_args()
    common.require_gunicorn()

    common.setup_django({})
    common.truncate_tables()
    from django_exotel_sms import status
    from django_exotel_sms.models import SmsMessage, StatusEvent

    queries = queries_per_callback()
    common.truncate_tables()
    common.say("creating messages")
    main_msgs = create_messages(args.n, "main")
    paced_msgs = create_messages(args.paced_n, "paced")
    warm_msgs = create_messages(500, "warm")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()  # gunicorn workers open their own

    ours = serve_and_load(
        "ours",
        "bench.urls",
        callback_requests(main_msgs),
        callback_requests(warm_msgs),
        callback_requests(paced_msgs),
        args,
        None,
    )
    moved = SmsMessage.objects.filter(status=status.SENT).count()
    events = StatusEvent.objects.count()
    bare = serve_and_load(
        "bare",
        "bench.bare_urls",
        callback_requests(main_msgs),
        callback_requests(warm_msgs),
        callback_requests(paced_msgs),
        args,
        ours["open_loop"]["rate"],
    )

    ratio = ours["closed_loop"]["per_s"] / bare["closed_loop"]["per_s"]
    summary = {
        "ours_per_bare": round(ratio, 3),
        "target_throughput_met": ratio >= 0.5,
        "target_p99_closed_met": ours["closed_loop"]["p99_ms"] < 50,
        "target_p99_paced_met": ours["open_loop"]["p99_ms"] < 50,
        "messages_moved_to_sent": moved,
        "status_events": events,
        "expected": args.n + args.paced_n + 500,
    }
    rows = []
    for label, data in (("ours", ours), ("bare view", bare)):
        for mode in ("closed_loop", "open_loop"):
            d = data[mode]
            load = (
                f"{args.concurrency} conns" if mode == "closed_loop" else f"paced {d['rate']:.0f}/s"
            )
            rows.append(
                [
                    label,
                    load,
                    d["requests"],
                    d["per_s"],
                    d["p50_ms"],
                    d["p99_ms"],
                    d["cpu"]["other_cores_avg"] if "cpu" in d else "-",
                    ", ".join(f"{k}: {v}" for k, v in sorted(d["statuses"].items()))
                    + (f"; errors {d['errors']}" if d["errors"] else ""),
                ]
            )
    common.print_table(
        f"Status callbacks, gunicorn {args.workers} x {args.worker_class}"
        + (f" ({args.threads} threads)" if args.threads > 1 else ""),
        ["view", "load", "callbacks", "per s", "p50 ms", "p99 ms", "other load", "answers"],
        rows,
    )
    common.print_table(
        "Targets",
        ["target", "measured", "result"],
        [
            ["throughput >= 0.5 x bare", f"{ratio:.2f}x", "met" if ratio >= 0.5 else "MISSED"],
            [
                f"p99 < 50 ms ({args.concurrency} conns)",
                ours["closed_loop"]["p99_ms"],
                "met" if summary["target_p99_closed_met"] else "MISSED",
            ],
            [
                "p99 < 50 ms (paced)",
                ours["open_loop"]["p99_ms"],
                "met" if summary["target_p99_paced_met"] else "MISSED",
            ],
        ],
    )
    common.print_table(
        "Queries per callback (test client, in-process)",
        ["case", "HTTP", "queries", "kinds"],
        [[k, v["status_code"], v["queries"], v["by_kind"]] for k, v in queries.items()],
    )
    print(f"messages moved to sent: {moved:,} of {summary['expected']:,}; status events {events:,}")
    common.write_result(
        "callbacks",
        {"args": vars(args), "ours": ours, "bare": bare, "summary": summary, "queries": queries},
    )


if __name__ == "__main__":
    main()
