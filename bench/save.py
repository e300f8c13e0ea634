"""Saving a bulk: ``send_bulk`` against a bare ``bulk_create`` of the same rows.

    python bench/save.py [--n 10000] [--rounds 3]

On PostgreSQL (the bench database), in this process, with no worker and no broker traffic:
the task ``send_bulk`` enqueues after commit is patched out, so only validating and saving
is timed (from the call until it returns, the commit included).

* **ours, same text**: ``SmsMessage.objects.send_bulk(to=[...], body=...)``;
* **ours, text per recipient**: ``send_bulk(messages=[{"to": ..., "body": ...}, ...])``;
* **bare, same text / text per recipient**: ``SmsMessage.objects.bulk_create`` in one
  transaction of the very rows ours wrote (every column's value read back from ours' run,
  instances built in the timed part, as a script would), with ours' insert batch size.

Each round runs the four in a rotated order (so none is always first or last) on emptied
tables; the table shows the median and the spread (min-max) over the rounds, and the CPU
other processes took meanwhile ("other load", in cores). Target: ours <= 2x bare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

STATIC_BODY = "Big sale today: 20% off everything. Reply STOP to opt out."
# Not copied: filled by the database or by bulk_create itself.
SKIP = {"id", "created_at", "updated_at"}


def dynamic_body(i: int) -> str:
    return f"Dear customer {i}, your order #{100000 + i} has shipped and arrives tomorrow."


def payload(kind: str, n: int) -> dict[str, Any]:
    targets = common.numbers(n)
    if kind == "static":
        return {"to": targets, "body": STATIC_BODY}
    return {"messages": [{"to": t, "body": dynamic_body(i)} for i, t in enumerate(targets)]}


def run_ours(kind: str, n: int) -> tuple[float, list[dict[str, Any]]]:
    """Seconds for send_bulk, and the rows it wrote (column values, in insert order)."""
    from django_exotel_sms import managers
    from django_exotel_sms.models import SmsMessage

    args = payload(kind, n)
    with mock.patch.object(managers, "dispatch_batch"):  # nothing enqueued: saving only
        started = time.perf_counter()
        batch = SmsMessage.objects.send_bulk(**args)
        elapsed = time.perf_counter() - started
    fields = [f.attname for f in SmsMessage._meta.concrete_fields if f.attname not in SKIP]
    rows = list(SmsMessage.objects.filter(batch=batch).order_by("pk").values(*fields))
    assert len(rows) == n, (len(rows), n)
    return elapsed, rows


def run_bare(rows: list[dict[str, Any]]) -> float:
    """The same rows through bulk_create, one transaction, ours' insert batch size."""
    from django.db import transaction

    from django_exotel_sms import managers
    from django_exotel_sms.models import SmsBatch, SmsMessage

    batch = SmsBatch.objects.create(name="bare")
    started = time.perf_counter()
    with transaction.atomic():
        SmsMessage.objects.bulk_create(
            [SmsMessage(**{**row, "batch_id": batch.pk}) for row in rows],
            batch_size=managers.INSERT_BATCH_SIZE,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="rows per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="rotated rounds (3 or more)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="rows per INSERT, both sides (default: ours)"
    )
    parser.add_argument("--output", default="save", help="results/<output>.json")
    args = parser.parse_args()

    common.setup_django()
    common.truncate_tables()
    from django_exotel_sms import managers

    if args.batch_size:
        managers.INSERT_BATCH_SIZE = args.batch_size  # read by send_bulk and run_bare
    INSERT_BATCH_SIZE = managers.INSERT_BATCH_SIZE

    # Warm up (imports, caches, the connection) and take the rows bare will insert.
    common.say(f"warm-up and reference rows: {args.n:,} per kind")
    reference = {kind: run_ours(kind, args.n)[1] for kind in ("static", "dynamic")}
    common.truncate_tables()

    scenarios = [("ours", "static"), ("ours", "dynamic"), ("bare", "static"), ("bare", "dynamic")]
    seconds: dict[tuple[str, str], list[float]] = {s: [] for s in scenarios}
    other: dict[tuple[str, str], list[float]] = {s: [] for s in scenarios}
    for round_ in range(args.rounds):
        order = common.rotated(scenarios, round_)
        common.say(f"round {round_ + 1}/{args.rounds}: {', '.join(f'{a}/{b}' for a, b in order)}")
        for who, kind in order:
            common.truncate_tables()
            monitor = common.CpuMonitor()
            if who == "ours":
                elapsed, _ = run_ours(kind, args.n)
            else:
                elapsed = run_bare(reference[kind])
            cpu = monitor.stop()
            seconds[(who, kind)].append(elapsed)
            other[(who, kind)].append(cpu["other_cores_avg"] or 0.0)
    common.truncate_tables()

    rows = []
    summary: dict[str, Any] = {}
    for kind in ("static", "dynamic"):
        ours, bare = seconds[("ours", kind)], seconds[("bare", kind)]
        ratio = statistics.median(ours) / statistics.median(bare)
        ratios = [o / b for o, b in zip(ours, bare)]
        summary[kind] = {
            "ours_s": ours,
            "bare_s": bare,
            "ratio_of_medians": round(ratio, 2),
            "ratio_per_round": [round(r, 2) for r in ratios],
            "other_cores": {"ours": other[("ours", kind)], "bare": other[("bare", kind)]},
            "target_met": ratio <= 2.0,
        }
        for who, values in (("ours", ours), ("bare", bare)):
            rows.append(
                [
                    f"{who} ({kind})",
                    args.n,
                    statistics.median(values),
                    common.spread(values),
                    round(args.n / statistics.median(values)),
                    statistics.median(other[(who, kind)]),
                ]
            )
    common.print_table(
        f"Saving {args.n:,} rows, {args.rounds} rotated rounds, insert batch {INSERT_BATCH_SIZE}",
        ["path", "rows", "median s", "spread s", "rows/s", "other load (cores)"],
        rows,
    )
    common.print_table(
        "Ratio and target",
        ["scenario", "ours/bare (medians)", "per round", "target <= 2x"],
        [
            [
                kind,
                f"{v['ratio_of_medians']:.2f}x",
                " ".join(f"{r:.2f}" for r in v["ratio_per_round"]),
                "met" if v["target_met"] else "MISSED",
            ]
            for kind, v in summary.items()
        ],
    )
    common.write_result(
        args.output, {"args": vars(args), "insert_batch_size": INSERT_BATCH_SIZE, **summary}
    )


if __name__ == "__main__":
    main()
