"""Status callback ingestion: our view beside a bare view that writes, on the same gunicorn.

    python bench/callbacks.py [--n 6000] [--paced-n 2000] [--rounds 3]

Messages are created beforehand (queued, with Sids, in batches of 100 as a bulk send leaves
them); each gets one "sent" callback on its batch's signed URL, as Exotel posts them. The
baseline is a bare Django view doing one UPDATE by Sid on the messages table
(``bench/bare_urls.py``): it writes, as ours must. Both are served at once by the same
gunicorn settings (``--workers`` sync workers, 2 by default), PostgreSQL, the same
middleware; every callback goes to a message of its own (nothing is a duplicate).

Each round measures, in rotated order (ours first in odd rounds, the bare view first in
even ones):

* saturation: ``--concurrency`` connections (8) posting as fast as answers come (req/s);
* latency when the server keeps up: ``--paced-n`` callbacks offered at half the bare view's
  capacity measured in this round (open loop; p50 / p99 from the moment each was due).

Reported: each round, then the median and spread (min-max) over the rounds of our req/s,
the bare view's, their ratio (per round) and the paced latencies; the CPU each gunicorn
and PostgreSQL spent per callback; and the "other load" (cores busy with processes not
this benchmark's, PostgreSQL's or Redis's) during each measurement. Targets (issue 17):
ours >= 0.6x the bare view at saturation; p99 < 50 ms paced. Also: queries per callback
(Django's test client, in this process) and a check that every callback moved its message.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, loadgen

DATE_SENT = "2026-01-15 10:30:00"
VIEWS = {"ours": "bench.urls", "bare": "bench.bare_urls"}
THROUGHPUT_TARGET = 0.6
P99_TARGET_MS = 50.0

Message = tuple[int, str, str, int]  # batch pk, sid, to, message pk


def create_messages(n: int, tag: str, start: int = 0) -> list[Message]:
    """n queued messages with Sids, 100 per batch named ``tag-...``."""
    from django.utils import timezone

    from django_exotel_sms import status
    from django_exotel_sms.models import SmsBatch, SmsMessage

    now = timezone.now()
    out: list[Message] = []
    for first in range(0, n, 100):
        size = min(100, n - first)
        batch = SmsBatch.objects.create(
            kind=SmsBatch.KIND_STATIC, name=f"{tag}-{first}", total=size
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
            for number in common.numbers(size, start=start + first)
        ]
        for message in SmsMessage.objects.bulk_create(rows):
            out.append((batch.pk, str(message.sid), message.to, message.pk))
    return out


def callback_requests(messages: list[Message]) -> list[tuple[str, bytes]]:
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

    messages = create_messages(3, "probe", start=5_000_000)
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


def _jiffies(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        rest = text[text.rindex(")") + 2 :].split()
        total += int(rest[11]) + int(rest[12])
    return total


def measure(server: common.Gunicorn, requests: list[tuple[str, bytes]], run: Any) -> dict[str, Any]:
    """One load run against one server: the load's summary, CPU and the other load."""
    import os

    hz = os.sysconf("SC_CLK_TCK")
    pids = server.tree_pids()
    before = _jiffies(pids)
    monitor = common.CpuMonitor()
    result = run(server.url, requests)
    cpu = monitor.stop()
    server_s = (_jiffies(pids) - before) / hz
    summary = result.summary()
    n = max(1, summary["requests"])
    return {
        **summary,
        "server_cpu_ms_per_request": round(server_s * 1000 / n, 3),
        "postgres_cpu_ms_per_request": round(cpu["postgres_cpu_s"] * 1000 / n, 3),
        "other_load_cores": cpu["other_cores_avg"],
        "cpu": cpu,
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _fmt(spread: dict[str, float], digits: int = 0) -> str:
    return (
        f"{spread['median']:,.{digits}f} ({spread['min']:,.{digits}f}-{spread['max']:,.{digits}f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6_000, help="callbacks per saturation run")
    parser.add_argument("--paced-n", type=int, default=2_000, help="callbacks per paced run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (rotated order)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections at once")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    args = parser.parse_args()
    common.require_gunicorn()

    common.setup_django({})
    common.truncate_tables()
    from django.db import connection

    from django_exotel_sms import status
    from django_exotel_sms.models import SmsMessage, StatusEvent

    queries = queries_per_callback()
    common.truncate_tables()
    common.say(
        f"creating messages: {args.rounds} rounds x 2 views x ({args.n:,} + {args.paced_n:,})"
    )
    plan: dict[tuple[int, str, str], list[tuple[str, bytes]]] = {}
    start = 0
    for r in range(args.rounds):
        for view in VIEWS:
            for mode, size in (("closed", args.n), ("paced", args.paced_n)):
                msgs = create_messages(size, f"{view}-{r}-{mode}", start=start)
                start += size
                plan[(r, view, mode)] = callback_requests(msgs)
    warm = {view: callback_requests(create_messages(300, f"{view}-warm")) for view in VIEWS}
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    connection.close()  # gunicorn workers open their own

    servers = {
        view: common.Gunicorn(f"gunicorn-{view}", urlconf=urlconf, workers=args.workers)
        for view, urlconf in VIEWS.items()
    }
    rounds: list[dict[str, Any]] = []
    try:
        for view, server in servers.items():
            loadgen.closed_loop(server.url, warm[view], args.concurrency)  # imports, connections
        for r in range(args.rounds):
            order = ["ours", "bare"] if r % 2 == 0 else ["bare", "ours"]
            result: dict[str, Any] = {"round": r + 1, "order": order}
            for view in order:
                common.say(f"round {r + 1}: {view}, {args.n:,} callbacks, {args.concurrency} conns")
                result[view] = {
                    "closed": measure(
                        servers[view],
                        plan[(r, view, "closed")],
                        lambda url, reqs: loadgen.closed_loop(url, reqs, args.concurrency),
                    )
                }
            rate = result["bare"]["closed"]["per_s"] / 2
            result["paced_rate"] = round(rate, 1)
            for view in order:
                common.say(
                    f"round {r + 1}: {view}, {args.paced_n:,} callbacks paced at {rate:.0f}/s"
                )
                result[view]["paced"] = measure(
                    servers[view],
                    plan[(r, view, "paced")],
                    lambda url, reqs: loadgen.open_loop(url, reqs, rate, args.concurrency),
                )
            result["ratio"] = round(
                result["ours"]["closed"]["per_s"] / result["bare"]["closed"]["per_s"], 3
            )
            rounds.append(result)
    finally:
        for server in servers.values():
            server.stop()

    ours_moved = SmsMessage.objects.filter(
        batch__name__startswith="ours-", status=status.SENT
    ).count()
    ours_total = SmsMessage.objects.filter(batch__name__startswith="ours-").count()
    events = StatusEvent.objects.filter(applied=True).count()

    rows = []
    for result in rounds:
        for view in result["order"]:
            for mode in ("closed", "paced"):
                d = result[view][mode]
                load = (
                    f"{args.concurrency} conns"
                    if mode == "closed"
                    else f"paced {result['paced_rate']:.0f}/s"
                )
                answers = ", ".join(f"{k}: {v}" for k, v in sorted(d["statuses"].items()))
                rows.append(
                    [
                        result["round"],
                        view,
                        load,
                        d["per_s"],
                        d["p50_ms"],
                        d["p99_ms"],
                        d["server_cpu_ms_per_request"],
                        d["postgres_cpu_ms_per_request"],
                        d["other_load_cores"],
                        answers + (f"; errors {d['errors']}" if d["errors"] else ""),
                    ]
                )
    common.print_table(
        f"Status callbacks, each round (gunicorn {args.workers} sync workers, PostgreSQL)",
        [
            "round",
            "view",
            "load",
            "req/s",
            "p50 ms",
            "p99 ms",
            "gunicorn CPU ms/req",
            "postgres CPU ms/req",
            "other load (cores)",
            "answers",
        ],
        rows,
    )

    def over(view: str, mode: str, key: str) -> dict[str, float]:
        return _spread([float(r[view][mode][key]) for r in rounds])

    summary = {
        "ours_per_s": over("ours", "closed", "per_s"),
        "bare_per_s": over("bare", "closed", "per_s"),
        "ratio": _spread([r["ratio"] for r in rounds]),
        "ours_paced_p50_ms": over("ours", "paced", "p50_ms"),
        "ours_paced_p99_ms": over("ours", "paced", "p99_ms"),
        "bare_paced_p50_ms": over("bare", "paced", "p50_ms"),
        "bare_paced_p99_ms": over("bare", "paced", "p99_ms"),
        "paced_rate": _spread([r["paced_rate"] for r in rounds]),
        "ours_gunicorn_cpu_ms": over("ours", "closed", "server_cpu_ms_per_request"),
        "bare_gunicorn_cpu_ms": over("bare", "closed", "server_cpu_ms_per_request"),
        "other_load_cores": _spread(
            [
                float(r[v][m]["other_load_cores"])
                for r in rounds
                for v in VIEWS
                for m in ("closed", "paced")
            ]
        ),
        "ours_messages_moved_to_sent": ours_moved,
        "ours_messages": ours_total,
        "applied_status_events": events,
    }
    ratio_met = summary["ratio"]["median"] >= THROUGHPUT_TARGET
    p99_met = summary["ours_paced_p99_ms"]["median"] < P99_TARGET_MS
    summary["target_throughput_met"] = ratio_met
    summary["target_p99_paced_met"] = p99_met
    common.print_table(
        f"Over {args.rounds} rounds: median (min-max)",
        ["measure", "ours", "bare view"],
        [
            ["req/s at saturation", _fmt(summary["ours_per_s"]), _fmt(summary["bare_per_s"])],
            [
                "gunicorn CPU ms per callback",
                _fmt(summary["ours_gunicorn_cpu_ms"], 2),
                _fmt(summary["bare_gunicorn_cpu_ms"], 2),
            ],
            [
                f"paced at {_fmt(summary['paced_rate'])}/s: p50 ms",
                _fmt(summary["ours_paced_p50_ms"], 1),
                _fmt(summary["bare_paced_p50_ms"], 1),
            ],
            [
                "paced: p99 ms",
                _fmt(summary["ours_paced_p99_ms"], 1),
                _fmt(summary["bare_paced_p99_ms"], 1),
            ],
            ["other load during the runs (cores)", _fmt(summary["other_load_cores"], 2), ""],
        ],
        align=False,
    )
    common.print_table(
        "Targets",
        ["target", "measured (median, spread)", "result"],
        [
            [
                f"ours >= {THROUGHPUT_TARGET}x the bare view",
                _fmt(summary["ratio"], 2) + "x",
                "met" if ratio_met else "MISSED",
            ],
            [
                f"p99 < {P99_TARGET_MS:.0f} ms paced at half the bare view's capacity",
                _fmt(summary["ours_paced_p99_ms"], 1) + " ms",
                "met" if p99_met else "MISSED",
            ],
        ],
        align=False,
    )
    common.print_table(
        "Queries per callback (test client, in-process)",
        ["case", "HTTP", "queries", "kinds"],
        [[k, v["status_code"], v["queries"], v["by_kind"]] for k, v in queries.items()],
    )
    print(
        f"our messages moved to sent: {ours_moved:,} of {ours_total:,}; "
        f"applied status events {events:,}"
    )
    common.write_result(
        "callbacks", {"args": vars(args), "rounds": rounds, "summary": summary, "queries": queries}
    )


if __name__ == "__main__":
    main()
