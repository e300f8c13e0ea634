"""Two more fault runs, on resending: a worker stalled past CLAIM_TIMEOUT, and at-least-once
delivery while Exotel's answers are lost.

    python bench/faults_resend.py stall            [--n 2000] [--stall 12] [--claim-timeout 5]
    python bench/faults_resend.py at-least-once    [--n 2000] [--hang 0.3] [--max-attempts 3]

``stall``: two Celery workers send (at-most-once) through a tight shared rate limit, so a
worker holds its claimed chunk while it waits for a slot. Once ``--stall-at`` of the
messages have their Sid, the first worker's process group gets SIGSTOP (a frozen VM, a long
GC pause) for ``--stall`` seconds, longer than ``CLAIM_TIMEOUT``; meanwhile the driver runs
``reconcile`` every ``--reconcile-every`` seconds, which hands the frozen worker's rows to
the other one. Then SIGCONT. The frozen worker must send none of the rows it lost
(``sending._mark_request_started`` returns only the rows still its own), and a late answer
for a request it had in flight still settles its rows. Documented bound: no message sent
twice.

``at-least-once``: ``DELIVERY = "at-least-once"``, ``READ_TIMEOUT`` 0.5 s and the stand-in
accepting ``--hang`` of the requests but answering after 1 s. Every lost answer may cost one
duplicate, and a message is attempted at most ``MAX_ATTEMPTS`` times. Documented bound: at
most one copy per attempt (so at most ``MAX_ATTEMPTS``), and every message ends accepted or
``uncertain`` -- never pending for ever.

Both report copies beyond the documented bound (target 0), messages still open or lost
(target 0) and the time to drain, and write ``bench/results/faults-<run>.json``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, faults

OPEN = ("pending", "submitting")


def start(
    args: argparse.Namespace, sandbox_options: dict[str, Any], overrides: dict[str, Any]
) -> tuple[common.Sandbox, list[common.Worker]]:
    sandbox = common.Sandbox(f"faults-{args.run}-sandbox", seed=args.seed, **sandbox_options)
    common.setup_django({"BASE_URL": sandbox.url, **overrides})
    common.flush_redis()
    common.truncate_tables()
    workers = [common.Worker(f"{args.run}-{i + 1}", args.concurrency) for i in range(2)]
    for worker in workers:
        worker.wait_ready()
    return sandbox, workers


def rows() -> list[tuple[str, str, int]]:
    from django_exotel_sms.models import SmsMessage

    return list(SmsMessage.objects.values_list("to", "status", "attempts"))


def drive(
    args: argparse.Namespace, started: float, on_tick: Callable[[float], bool] | None = None
) -> tuple[float | None, list[dict[str, Any]]]:
    """Reconcile on a schedule until no message is pending or submitting (and on_tick agrees)."""
    reconciles: list[dict[str, Any]] = []
    last_reconcile = last_print = time.monotonic()
    while time.monotonic() - started < args.timeout:
        time.sleep(0.5)
        now = time.monotonic()
        busy = on_tick(now - started) if on_tick else False
        if now - last_reconcile >= args.reconcile_every:
            report = faults.reconcile_pass(args.claim_timeout)
            reconciles.append({"at_s": round(now - started, 1), **report})
            last_reconcile = now
        counts = faults.status_counts()
        if now - last_print >= 5:
            common.say(f"{now - started:6.0f} s  {counts}")
            last_print = now
        if not busy and sum(counts.get(k, 0) for k in OPEN) == 0:
            return now - started, reconciles
    return None, reconciles


def copies_report(sandbox: common.Sandbox, max_attempts: int | None) -> dict[str, Any]:
    """Copies Exotel accepted per number, against what each message's attempts allow."""
    accepted = sandbox.control.recipients()
    states: Counter[str] = Counter()
    beyond = lost = open_rows = lost_answers = 0
    histogram: Counter[int] = Counter()
    for to, state, attempts in rows():
        states[state] += 1
        copies = accepted.get(to, 0)
        histogram[copies] += 1
        if state in OPEN:
            open_rows += 1
        elif copies == 0 and state not in ("uncertain", "rejected", "failed"):
            lost += 1  # claims progress Exotel never saw
        # One copy per attempt at most; at-most-once allows one copy in all.
        allowed = 1 if max_attempts is None else min(attempts, max_attempts)
        beyond += max(0, copies - allowed)
        if max_attempts is not None:
            lost_answers += attempts - (1 if state == "queued" else 0)
    return {
        "messages": sum(states.values()),
        "final_statuses": dict(states),
        "copies_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "max_copies": max(accepted.values(), default=0),
        "sent_twice": sum(1 for c in accepted.values() if c > 1),
        "duplicates": sum(c - 1 for c in accepted.values() if c > 1),
        "beyond_bound": beyond,
        "lost_answers": lost_answers,
        "open": open_rows,
        "lost": lost,
        "post_requests": sum(1 for r in sandbox.control.requests() if r["method"] == "POST"),
    }


# -- stall ----------------------------------------------------------------------------------------


def run_stall(args: argparse.Namespace) -> None:
    overrides = {
        "CHUNK_SIZE": args.chunk,
        "BATCH_PARALLELISM": 2,
        "RATE_LIMIT": args.rate,
        # A consistent set (system check E030): 1 + 1 + 2 < CLAIM_TIMEOUT.
        "RATE_LIMIT_MAX_WAIT": 1.0,
        "CONNECT_TIMEOUT": 1.0,
        "READ_TIMEOUT": 2.0,
        "CLAIM_TIMEOUT": args.claim_timeout,
        "RETRY_BACKOFF": 1.5,
        "RETRY_BACKOFF_MAX": 2.0,
    }
    sandbox, workers = start(args, {"latency": args.latency}, overrides)
    processes: list[common.Process] = [sandbox, *workers]
    frozen = workers[0]
    stall: dict[str, Any] = {}
    try:
        monitor = common.CpuMonitor()
        started = time.monotonic()
        faults.enqueue(args.n, args.batch_size, args.singles)
        threshold = int(args.stall_at * args.n)

        def tick(at: float) -> bool:
            from django_exotel_sms.models import SmsMessage

            if "stopped_at" not in stall:
                if SmsMessage.objects.filter(sid__isnull=False).count() >= threshold:
                    os.killpg(frozen.pid, signal.SIGSTOP)
                    stall["stopped_at"] = round(at, 1)
                    # Claims in flight at the stop: the frozen worker's are among them.
                    stall["claimed"] = list(
                        SmsMessage.objects.filter(status="submitting").values_list(
                            "to", "request_started_at"
                        )
                    )
                    stall["counts_at_stop"] = faults.status_counts()
                    common.say(f"SIGSTOP {frozen.node} at {at:.1f} s: {stall['counts_at_stop']}")
                return True
            if "resumed_at" not in stall:
                if at - stall["stopped_at"] >= args.stall:
                    os.killpg(frozen.pid, signal.SIGCONT)
                    stall["resumed_at"] = round(at, 1)
                    common.say(f"SIGCONT {frozen.node} at {at:.1f} s")
                return True
            return at - stall["resumed_at"] < 3.0  # let the thawed worker finish what it had

        drained, reconciles = drive(args, started, tick)
        time.sleep(3.0)  # late answers the thawed worker may still be writing
        cpu = monitor.stop()
        result = copies_report(sandbox, None)
        accepted = sandbox.control.recipients()
        claimed = stall.pop("claimed", [])
        in_claims = {
            "claimed_at_the_stop": len(claimed),
            "request_not_started": sum(1 for _, started in claimed if started is None),
            "sent_once": sum(1 for to, _ in claimed if accepted.get(to) == 1),
            "sent_twice": sum(1 for to, _ in claimed if accepted.get(to, 0) > 1),
        }
    finally:
        for process in reversed(processes):
            if process is frozen and process.alive():
                os.killpg(process.pid, signal.SIGCONT)
            process.stop()
        common.flush_redis()
    handed = sum(r["reclaimed_pending"] + r["marked_uncertain"] for r in reconciles)
    summary = {
        **result,
        "drained": drained is not None,
        "time_to_drain_s": round(drained, 1) if drained is not None else None,
        "stall": stall,
        "handed_over_by_reconcile": handed,
        "reclaimed_pending": sum(r["reclaimed_pending"] for r in reconciles),
        "marked_uncertain": sum(r["marked_uncertain"] for r in reconciles),
        "claims_at_the_stop": in_claims,
    }
    common.print_table(
        f"Fault run 'stall': {args.n:,} messages, one worker frozen {args.stall:g} s "
        f"(CLAIM_TIMEOUT {args.claim_timeout:g} s)",
        ["figure", "measured", "target", "result"],
        [
            ["messages sent twice", result["sent_twice"], 0, _met(result["sent_twice"] == 0)],
            [
                "copies beyond the bound",
                result["beyond_bound"],
                0,
                _met(result["beyond_bound"] == 0),
            ],
            [
                "messages open or lost",
                result["open"] + result["lost"],
                0,
                _met(result["open"] + result["lost"] == 0),
            ],
            [
                "rows handed over while frozen (pending / uncertain)",
                f"{summary['reclaimed_pending']} / {summary['marked_uncertain']}",
                "-",
                "",
            ],
            [
                "rows claimed at the stop (request not started) / each sent once",
                f"{in_claims['claimed_at_the_stop']} ({in_claims['request_not_started']})"
                f" / {in_claims['sent_once']}",
                "-",
                "",
            ],
            ["final statuses", result["final_statuses"], "-", ""],
            ["time to drain (s)", summary["time_to_drain_s"], "-", ""],
            ["POST requests", result["post_requests"], "-", ""],
            ["other load on the machine (cores)", cpu["other_cores_avg"], "-", ""],
            ["load average (1 min, start / end)", _load(cpu), "-", ""],
        ],
    )
    common.write_result(
        "faults-stall",
        {"args": vars(args), "summary": summary, "reconciles": reconciles, "cpu": cpu},
    )


# -- at-least-once --------------------------------------------------------------------------------


def run_at_least_once(args: argparse.Namespace) -> None:
    overrides = {
        "DELIVERY": "at-least-once",
        "BATCH_PARALLELISM": 2,
        "MAX_ATTEMPTS": args.max_attempts,
        "READ_TIMEOUT": 0.5,
        "CONNECT_TIMEOUT": 1.0,
        "RATE_LIMIT_MAX_WAIT": 1.0,
        "CLAIM_TIMEOUT": args.claim_timeout,
        "RETRY_BACKOFF": 1.5,
        "RETRY_BACKOFF_MAX": 2.0,
    }
    sandbox_options = {"latency": args.latency, "hang_rate": args.hang, "hang_seconds": 1.0}
    sandbox, workers = start(args, sandbox_options, overrides)
    processes: list[common.Process] = [sandbox, *workers]
    try:
        monitor = common.CpuMonitor()
        started = time.monotonic()
        faults.enqueue(args.n, args.batch_size, args.singles)
        drained, reconciles = drive(args, started)
        cpu = monitor.stop()
        result = copies_report(sandbox, args.max_attempts)
    finally:
        for process in reversed(processes):
            process.stop()
        common.flush_redis()
    summary = {
        **result,
        "drained": drained is not None,
        "time_to_drain_s": round(drained, 1) if drained is not None else None,
    }
    ok_states = set(result["final_statuses"]) <= {"queued", "uncertain"}
    common.print_table(
        f"Fault run 'at-least-once': {args.n:,} messages, {args.hang:.0%} of answers lost "
        f"(MAX_ATTEMPTS {args.max_attempts})",
        ["figure", "measured", "target", "result"],
        [
            [
                "copies beyond the bound",
                result["beyond_bound"],
                0,
                _met(result["beyond_bound"] == 0),
            ],
            [
                "most copies of one message",
                result["max_copies"],
                f"<= {args.max_attempts}",
                _met(result["max_copies"] <= args.max_attempts),
            ],
            [
                "messages open or lost",
                result["open"] + result["lost"],
                0,
                _met(result["open"] + result["lost"] == 0),
            ],
            ["every message queued or uncertain", result["final_statuses"], "-", _met(ok_states)],
            [
                "duplicates / lost answers",
                f"{result['duplicates']} / {result['lost_answers']}",
                "dup <= lost",
                _met(result["duplicates"] <= result["lost_answers"]),
            ],
            ["copies per message (histogram)", result["copies_histogram"], "-", ""],
            ["time to drain (s)", summary["time_to_drain_s"], "-", ""],
            ["POST requests", result["post_requests"], "-", ""],
            ["other load on the machine (cores)", cpu["other_cores_avg"], "-", ""],
            ["load average (1 min, start / end)", _load(cpu), "-", ""],
        ],
    )
    common.write_result(
        "faults-at-least-once",
        {"args": vars(args), "summary": summary, "reconciles": reconciles, "cpu": cpu},
    )


def _load(cpu: dict[str, Any]) -> str:
    return f"{cpu['loadavg_1m_start']} / {cpu['loadavg_1m_end']}"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", choices=["stall", "at-least-once"])
    parser.add_argument("--n", type=int, default=2_000, help="messages in all")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--singles", type=int, default=40, help="of n, sent one by one")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    parser.add_argument("--reconcile-every", type=float, default=1.0)
    parser.add_argument("--claim-timeout", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="give up draining after")
    parser.add_argument("--seed", type=int, default=7)
    stall = parser.add_argument_group("stall")
    stall.add_argument("--stall", type=float, default=12.0, help="seconds frozen (SIGSTOP)")
    stall.add_argument("--stall-at", type=float, default=0.2, help="share with Sid at the stop")
    stall.add_argument("--chunk", type=int, default=10, help="CHUNK_SIZE: many claims in flight")
    stall.add_argument("--rate", default="5/second", help="RATE_LIMIT: workers wait holding claims")
    alo = parser.add_argument_group("at-least-once")
    alo.add_argument("--hang", type=float, default=0.3, help="share of answers lost")
    alo.add_argument("--max-attempts", type=int, default=3)
    args = parser.parse_args()
    if args.run == "stall":
        run_stall(args)
    else:
        run_at_least_once(args)


if __name__ == "__main__":
    main()
