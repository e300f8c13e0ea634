"""Bulk sending speed: our public API and a real Celery worker, beside the floor and the naive way.

    python bench/bulk_send.py [--n 10000] [--latency 0.02] [--naive-n 1000] [--concurrency 2]
                              [--rounds 3]

Against the local Exotel stand-in (its own process) with a fixed added latency per request,
on PostgreSQL and the Redis broker. StatusCallback URLs are on, as a deployment sends them:
every request carries one (ours a signed batch URL, the floor one of the same shape), and
the stand-in posts each message's callback to a sink that answers 200 (the cost of taking
callbacks in is bench/callbacks.py's subject, not this one's).

* ours, same text: ``SmsMessage.objects.send_bulk(to=[...], body=...)``; ours, text per
  recipient: ``send_bulk(messages=[...])``; each timed from the call until every message has
  its Sid, saving included (the worker, ``-c --concurrency``, is started and idle beforehand);
* floor: the same 100-recipient requests our worker makes, sent by a bare script with a
  ``requests.Session`` and no database, in as many threads as worker processes (the
  baseline the ratio uses: equal concurrency) and in one thread;
* the three run in rotated order, ``--rounds`` times (ours, floor, floor-1; then floor,
  floor-1, ours; ...), so none always runs first or last; the tables give the median and the
  spread (min-max) of each, and the other load (CPU of processes not in the run) in each;
* naive: one ``requests.post`` per message, as in Exotel's own Python example (once);
* database work: queries per 100-message chunk (``deliver_batch`` in this process under
  ``CaptureQueriesContext``, with BEGIN/COMMIT counted apart) and per 100 messages saved by
  ``send_bulk``; and ms per chunk in process with ``synchronous_commit`` on and off (measured
  only: the package never turns it off).

Targets: our median time within 1.5x the floor's (equal concurrency); ours >= 50x naive;
queries per chunk a small constant.
"""

from __future__ import annotations

import argparse
import statistics
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


def _round_trips(queries: list[dict[str, Any]]) -> dict[str, int]:
    """Statements (BEGIN/COMMIT apart) and commits: explicit ones plus autocommitted writes."""
    statements = commits = 0
    in_transaction = False
    for query in queries:
        verb = query["sql"].split(None, 1)[0].upper()
        if verb == "BEGIN":
            in_transaction = True
        elif verb == "COMMIT":
            in_transaction = False
            commits += 1
        elif verb == "ROLLBACK":
            in_transaction = False
        else:
            statements += 1
            if not in_transaction and verb in ("UPDATE", "INSERT", "DELETE", "WITH"):
                commits += 1
    return {"statements": statements, "commits": commits}


def _measure(
    kind: str, size: int, start: int, *, synchronous_commit: bool = True
) -> dict[str, Any]:
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
    with connection.cursor() as cursor:
        # Measured, never relied on: what a commit's WAL flush costs per chunk.
        cursor.execute(f"SET synchronous_commit = {'on' if synchronous_commit else 'off'}")
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as sent:
        outcome = sending.deliver_batch(batch.pk)
    elapsed = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")
    kinds = Counter(q["sql"].split(None, 1)[0].upper() for q in sent.captured_queries)
    return {
        "messages": size,
        "chunks": outcome.requests,
        "accepted": outcome.accepted,
        "left_without_sid": SmsMessage.objects.filter(batch=batch, sid__isnull=True).count(),
        "send_queries": len(sent.captured_queries),
        **{f"send_{k}": v for k, v in _round_trips(sent.captured_queries).items()},
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
        # The same batch with synchronous_commit off (this connection only): what skipping
        # the WAL flush at each commit would buy. Reported, not used.
        async_commit = _measure(kind, size, 9_300_000 + 200_000 * n, synchronous_commit=False)
        result[kind] = {
            **full,
            "send_queries_per_chunk": round(per_chunk, 2),
            "send_statements_per_chunk": round(
                (full["send_statements"] - half["send_statements"]) / extra_chunks, 2
            ),
            "send_commits_per_chunk": round(
                (full["send_commits"] - half["send_commits"]) / extra_chunks, 2
            ),
            "ms_per_chunk_synchronous_commit_off": async_commit["ms_per_chunk_in_process"],
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


def _floor_callback() -> str:
    """A StatusCallback URL of the shape ours sends (a signed batch token), to the sink."""
    from django.utils import timezone

    from django_exotel_sms import callbacks

    url = callbacks.status_callback_url(callbacks.BATCH, 1, timezone.now())
    assert url, "CALLBACK_BASE_URL is set by main()"
    return url


def _floor_form(kind: str, chunk: list[str], offset: int, callback: str) -> list[tuple[str, str]]:
    if kind == "static":
        form = [("From", SENDER)]
        form += [("To[]", number) for number in chunk]
        form += [("Body", STATIC_BODY), ("DltEntityId", ENTITY), ("StatusCallback", callback)]
        return form
    form = []
    for i, number in enumerate(chunk):
        form += [
            (f"Messages[{i}][To]", number),
            (f"Messages[{i}][Body]", dynamic_body(offset + i)),
            (f"Messages[{i}][From]", SENDER),
        ]
    form += [("DltEntityId", ENTITY), ("StatusCallback", callback)]
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
    callback = _floor_callback()
    forms = [_floor_form(kind, chunk, offset, callback) for offset, chunk in chunks]
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


# -- the callback sink -------------------------------------------------------------------------

# Answers every POST 200 and forgets it: where the stand-in posts the callbacks both ours and
# the floor ask for. Its own process, so it shares no GIL with what is measured.
SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
print("listening", flush=True)
server.serve_forever()
"""


def start_sink() -> tuple[common.Process, str]:
    port = common.free_port()
    sink = common.Process("bulk-callback-sink", [common.PYTHON, "-c", SINK, str(port)])
    if not common.wait_until(lambda: "listening" in sink.log_text(), 20, interval=0.05):
        raise RuntimeError(f"the callback sink did not start:\n{sink.log_text()}")
    return sink, f"http://127.0.0.1:{port}/exotel/"


# -- main ---------------------------------------------------------------------------------------


def _spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [r["seconds"] for r in runs]
    other = [r["cpu"]["other_cores_avg"] or 0.0 for r in runs]
    return {
        "runs": len(runs),
        "seconds_median": round(statistics.median(seconds), 3),
        "seconds_min": round(min(seconds), 3),
        "seconds_max": round(max(seconds), 3),
        "messages_per_s_median": round(runs[0]["messages"] / statistics.median(seconds), 1),
        "other_cores_median": round(statistics.median(other), 2),
        "other_cores_max": round(max(other), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="recipients per scenario")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds added per request")
    parser.add_argument("--naive-n", type=int, default=1_000, help="messages sent the naive way")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (-c)")
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds of each phase")
    parser.add_argument("--query-batch", type=int, default=1_000, help="messages for query counts")
    parser.add_argument("--timeout", type=float, default=600.0, help="per scenario, seconds")
    parser.add_argument("--output", default="bulk_send", help="results/<output>.json")
    args = parser.parse_args()

    sink, callback_base = start_sink()
    sandbox = common.Sandbox("bulk-sandbox", latency=args.latency, callback_delay=0.5)
    worker: common.Worker | None = None
    phases = ("ours", f"floor/{args.concurrency}", "floor/1")
    runs: dict[str, list[dict[str, Any]]] = {
        f"{kind}/{phase}": [] for kind in ("static", "dynamic") for phase in phases
    }
    order: list[str] = []
    try:
        common.setup_django(
            {
                "BASE_URL": sandbox.url,
                "BATCH_PARALLELISM": args.concurrency,
                "CALLBACK_BASE_URL": callback_base,
            }
        )
        common.flush_redis()
        common.truncate_tables()
        common.say(f"queries per chunk ({args.query_batch} messages, in-process)")
        queries = query_counts(args.query_batch)
        common.flush_redis()

        common.say(f"naive: {args.naive_n:,} x requests.post")
        naive = run_naive(args.naive_n, sandbox)

        worker = common.Worker("bulk", concurrency=args.concurrency)
        worker.wait_ready()
        for round_ in range(args.rounds):
            # Rotated: each phase runs first, second and last in turn.
            shift = round_ % len(phases)
            for phase in phases[shift:] + phases[:shift]:
                for kind in ("static", "dynamic"):
                    common.say(f"round {round_ + 1}/{args.rounds}: {phase}, {kind}")
                    if phase == "ours":
                        result = run_ours(kind, args.n, sandbox, args.timeout)
                    else:
                        streams = int(phase.split("/")[1])
                        result = run_floor(kind, args.n, streams, sandbox)
                    runs[f"{kind}/{phase}"].append(result)
                    order.append(f"{kind}/{phase}")
                    common.say(
                        f"  {result['seconds']} s, {result['messages_per_s']:,} msg/s, "
                        f"other load {result['cpu']['other_cores_avg']} cores"
                    )
    finally:
        if worker is not None:
            worker.stop()
        sandbox.stop()
        sink.stop()
        common.flush_redis()

    stats = {key: _spread(value) for key, value in runs.items()}
    rows = []
    summary: dict[str, Any] = {}
    for kind in ("static", "dynamic"):
        ours = stats[f"{kind}/ours"]
        floor = stats[f"{kind}/floor/{args.concurrency}"]
        floor_1 = stats[f"{kind}/floor/1"]
        ratio = ours["seconds_median"] / floor["seconds_median"]
        # Per round: ours against the floor of the same round (the spread of the ratio).
        per_round = [
            o["seconds"] / f["seconds"]
            for o, f in zip(
                runs[f"{kind}/ours"], runs[f"{kind}/floor/{args.concurrency}"], strict=True
            )
        ]
        summary[kind] = {
            "ours_per_floor_time": round(ratio, 2),
            "ours_per_floor_time_by_round": [round(r, 2) for r in per_round],
            "ours_per_floor_1_time": round(ours["seconds_median"] / floor_1["seconds_median"], 2),
            "ours_per_naive_rate": round(
                ours["messages_per_s_median"] / naive["messages_per_s"], 1
            ),
            "target_floor_met": ratio <= 1.5,
        }
        for label, value in (
            (f"ours ({kind}, worker -c {args.concurrency})", ours),
            (f"floor ({kind}, {args.concurrency} threads)", floor),
            (f"floor ({kind}, 1 thread)", floor_1),
        ):
            rows.append(
                [
                    label,
                    value["runs"],
                    value["seconds_median"],
                    f"{value['seconds_min']}-{value['seconds_max']}",
                    value["messages_per_s_median"],
                    f"{value['seconds_median'] / floor['seconds_median']:.2f}x",
                    f"{value['other_cores_median']} (max {value['other_cores_max']})",
                ]
            )
    rows.append(
        [
            "naive (requests.post each)",
            1,
            naive["seconds"],
            "-",
            naive["messages_per_s"],
            "-",
            naive["cpu"]["other_cores_avg"],
        ]
    )
    common.print_table(
        f"Bulk send, {args.n:,} recipients, {args.latency * 1000:.0f} ms added latency, "
        f"StatusCallback on, {args.rounds} rotated rounds (median, min-max)",
        [
            "path",
            "runs",
            "seconds",
            "spread (s)",
            "msg/s",
            "time vs floor",
            "other load (cores)",
        ],
        rows,
    )
    common.print_table(
        "Ratios and targets (time, medians)",
        [
            "scenario",
            f"ours/floor({args.concurrency})",
            "by round",
            "target <= 1.5x",
            "ours/floor(1)",
            "ours/naive rate",
        ],
        [
            [
                kind,
                f"{summary[kind]['ours_per_floor_time']}x",
                " ".join(f"{r}x" for r in summary[kind]["ours_per_floor_time_by_round"]),
                "met" if summary[kind]["target_floor_met"] else "MISSED",
                f"{summary[kind]['ours_per_floor_1_time']}x",
                f"{summary[kind]['ours_per_naive_rate']}x",
            ]
            for kind in ("static", "dynamic")
        ],
    )
    common.print_table(
        "Database work per 100-message chunk (in process, one connection)",
        [
            "batch",
            "chunks",
            "queries",
            "statements",
            "commits",
            "fixed/run",
            "ms/chunk",
            "ms/chunk sync_commit off",
            "queries/100 saved",
        ],
        [
            [
                k,
                v["chunks"],
                v["send_queries_per_chunk"],
                v["send_statements_per_chunk"],
                v["send_commits_per_chunk"],
                v["send_queries_fixed_per_run"],
                v["ms_per_chunk_in_process"],
                v["ms_per_chunk_synchronous_commit_off"],
                v["save_queries_per_100"],
            ]
            for k, v in queries.items()
        ],
    )
    for kind in ("static", "dynamic"):
        for mine in runs[f"{kind}/ours"]:
            print(
                f"ours ({kind}): saving {mine['save_seconds']} s + sending "
                f"{mine['send_seconds']} s; {mine['requests']} requests; statuses "
                f"{mine['statuses']}; recipients sent twice: {mine['recipients_sent_twice']}"
            )
    common.write_result(
        args.output,
        {
            "args": vars(args),
            "order": order,
            "runs": runs,
            "stats": stats,
            "naive": naive,
            "summary": summary,
            "queries": queries,
        },
    )


if __name__ == "__main__":
    main()
