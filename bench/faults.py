"""The fault suite: durability figures under throttling, outages, jitter, unruly callbacks,
a worker killed with SIGKILL mid-run, and forged callbacks mixed into real ones.

    python bench/faults.py [--n 50000] [--forged 1000] [--seed 7]

Set-up: the local Exotel stand-in (own process) answers 10% of API requests 429 or 503
(``--throttle`` + ``--unavailable``), adds latency with jitter, duplicates 5% of status
callbacks, posts a stale "submitted" callback after the terminal one for ``--reorder`` of
the messages, and fails some recipients (DND, operator errors) through rules. Callbacks go
to a live gunicorn serving the test URLs (``CALLBACK_BASE_URL`` points at it) on PostgreSQL.
Two Celery workers send; once ``--kill-at`` of the messages have their Sid, the first is
killed with SIGKILL (its whole process group) and a replacement started. The driver runs
``reconcile`` every ``--reconcile-every`` seconds, as Celery beat would, with
``CLAIM_TIMEOUT=--claim-timeout``, and enqueues what it says to resume. Meanwhile
``--forged`` forged or tampered callbacks are posted (bad signatures, edited scopes, a
foreign key, Sids outside their token's scope).

Reported: messages lost (target 0), recipients sent twice per the stand-in's log (target 0),
messages whose final status differs from the stand-in's (target 0), time to drain, and the
state changes the forged callbacks caused (target 0; every one must be answered 403, or 200
like an unknown Sid when only the Sid is outside a valid token's scope).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

FORGED_MARK = "BenchForged"
# One genuine, harmless report ("queued" never moves a message) carries this mark, to show
# that a marked payload is stored and found: the zero for forged marks then means something.
CONTROL_MARK = "BenchControl"
FORGED_KINDS = (
    "bad-signature",  # a real batch token with its signature altered
    "edited-scope",  # a real token whose batch number was changed, signature kept
    "foreign-key",  # signed with a key that is not ours
    "cross-batch-sid",  # a valid token for one batch, a Sid of another batch's message
    "cross-message-sid",  # a valid token for one message, the Sid of another
    "garbage",  # not a token at all
)
# A Sid outside a valid token's scope is answered like an unknown Sid (200, nothing
# changes), so a token tells nothing about other messages; every other forgery gets 403.
EXPECTED_ANSWER = {kind: 200 if kind.startswith("cross-") else 403 for kind in FORGED_KINDS}


# -- sending --------------------------------------------------------------------------------------


def enqueue(n: int, batch_size: int, singles: int) -> dict[str, Any]:
    """Batches of ``batch_size``, alternately same-text and text-per-recipient, plus singles."""
    from django_exotel_sms.models import SmsMessage

    targets = common.numbers(n)
    batches: list[int] = []
    bulk = targets[: n - singles]
    for index, start in enumerate(range(0, len(bulk), batch_size)):
        chunk = bulk[start : start + batch_size]
        if index % 2 == 0:
            batch = SmsMessage.objects.send_bulk(to=chunk, body="Flash sale: 30% off today only.")
        else:
            batch = SmsMessage.objects.send_bulk(
                messages=[
                    {"to": t, "body": f"Order {start + i} is out for delivery."}
                    for i, t in enumerate(chunk)
                ]
            )
        batches.append(batch.pk)
    for number in targets[n - singles :]:
        SmsMessage.objects.send(number, "Your OTP is 481516. Do not share it.")
    return {"batches": batches, "singles": singles, "targets": targets}


def status_counts() -> dict[str, int]:
    from django.db.models import Count

    from django_exotel_sms.models import SmsMessage

    rows = SmsMessage.objects.values("status").annotate(n=Count("pk")).order_by()
    return {row["status"]: row["n"] for row in rows}


def reconcile_pass(claim_timeout: float, *, reconcile_after: float | None = None) -> dict[str, Any]:
    """What the periodic ``reconcile`` task does, with this run's claim timeout."""
    from django.conf import settings
    from django.test.utils import override_settings

    from django_exotel_sms import reconcile, tasks

    extra: dict[str, Any] = {"CLAIM_TIMEOUT": claim_timeout}
    if reconcile_after is not None:
        extra["RECONCILE_AFTER"] = reconcile_after
        extra["RECONCILE_BATCH_SIZE"] = 1000
    with override_settings(EXOTEL_SMS={**settings.EXOTEL_SMS, **extra}):
        report = reconcile.run()
    for batch_id in report.batches_to_resume:
        tasks.send_batch.apply_async((batch_id,))
    for message_id in report.messages_to_resume:
        tasks.send_message.apply_async((message_id,))
    return {
        "reclaimed_pending": report.reclaimed_pending,
        "marked_uncertain": report.marked_uncertain,
        "checked": report.checked,
        "updated": report.updated,
        "errors": report.errors,
        "resumed_batches": len(report.batches_to_resume),
        "resumed_messages": len(report.messages_to_resume),
    }


# -- forged callbacks -----------------------------------------------------------------------------


class Forger(threading.Thread):
    """Posts forged callbacks to the live server at a steady pace, bounded in count and time."""

    def __init__(self, url: str, count: int, pace: float, seed: int, deadline: float) -> None:
        super().__init__(name="forger", daemon=True)
        self.url = url.rstrip("/")
        self.count = count
        self.pace = pace
        self.random = random.Random(seed)
        self.deadline = deadline
        self.answers: Counter[tuple[str, int]] = Counter()
        self.errors = 0
        self.sent = 0
        self.control_status: int | None = None
        self.stop_event = threading.Event()

    def _sample(self, **filters: Any) -> Any:
        from django_exotel_sms.models import SmsMessage

        qs = SmsMessage.objects.filter(sid__isnull=False, **filters)
        top = qs.order_by("-pk").values_list("pk", flat=True).first()
        if top is None:
            return None
        pivot = self.random.randint(1, top)
        fields = ("pk", "sid", "to", "batch_id", "created_at", "batch__created_at")
        return (
            qs.filter(pk__gte=pivot).order_by("pk").values(*fields).first()
            or qs.order_by("pk").values(*fields).first()
        )

    def _forge(self, kind: str) -> tuple[str, dict[str, str]] | None:
        from django.core import signing

        from django_exotel_sms import callbacks

        victim = self._sample(batch__isnull=False)
        if victim is None:
            return None
        form = {
            "SmsSid": victim["sid"],
            "To": victim["to"],
            "Status": "failed",
            "DetailedStatus": "FAILED_REJECTED",
            "DetailedStatusCode": "23060",
            "SmsUnits": "1",
            FORGED_MARK: kind,
        }
        real = callbacks.make_token(
            callbacks.BATCH, victim["batch_id"], victim["batch__created_at"]
        )
        if kind == "bad-signature":
            last = real[-1]
            token = real[:-1] + ("A" if last != "A" else "B")
        elif kind == "edited-scope":
            _, _, rest = real.partition(":")
            token = f"b{victim['batch_id'] + 1}:{rest}"
        elif kind == "foreign-key":
            token = signing.TimestampSigner(
                key="not-our-secret-key", salt=callbacks.STATUS_SALT
            ).sign(f"b{victim['batch_id']}")
        elif kind == "cross-batch-sid":
            other = self._sample(batch__isnull=False, batch_id__lt=victim["batch_id"])
            other = other or self._sample(batch__isnull=False, batch_id__gt=victim["batch_id"])
            if other is None:
                return None
            token = callbacks.make_token(
                callbacks.BATCH, other["batch_id"], other["batch__created_at"]
            )
        elif kind == "cross-message-sid":
            single = self._sample(batch__isnull=True)
            if single is None or single["pk"] == victim["pk"]:
                return None
            token = callbacks.make_token(callbacks.MESSAGE, single["pk"], single["created_at"])
        else:
            token = f"b{victim['batch_id']}:{self.random.getrandbits(40):x}:forged"
        return f"{self.url}/exotel/status/{token}/", form

    def _post_control(self, session: Any) -> None:
        from django_exotel_sms import callbacks

        victim = None
        while victim is None and not self.stop_event.wait(0.2):
            victim = self._sample(batch__isnull=False)
        if victim is None:
            return
        token = callbacks.make_token(
            callbacks.BATCH, victim["batch_id"], victim["batch__created_at"]
        )
        form = {"SmsSid": victim["sid"], "To": victim["to"], "Status": "queued", CONTROL_MARK: "1"}
        self.control_status = session.post(
            f"{self.url}/exotel/status/{token}/", data=form, timeout=30
        ).status_code

    def run(self) -> None:
        import requests
        from django.db import connection

        session = requests.Session()
        try:
            self._post_control(session)
            while self.sent < self.count and not self.stop_event.is_set():
                if time.monotonic() > self.deadline:
                    break
                kind = FORGED_KINDS[self.sent % len(FORGED_KINDS)]
                forged = self._forge(kind)
                if forged is None:
                    time.sleep(0.2)  # nothing to aim at yet
                    continue
                url, form = forged
                try:
                    code = session.post(url, data=form, timeout=30).status_code
                except requests.RequestException:
                    self.errors += 1
                    code = 0
                self.answers[(kind, code)] += 1
                self.sent += 1
                time.sleep(self.pace)
        finally:
            session.close()
            connection.close()


class Killer(threading.Thread):
    """SIGKILLs the first worker once ``share`` of the messages have their Sid, then starts a
    replacement; it watches from the start, so the kill can land while batches are still
    being saved."""

    def __init__(
        self, victim: common.Worker, replacement: str, concurrency: int, threshold: int
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.victim = victim
        self.replacement_name = replacement
        self.concurrency = concurrency
        self.threshold = threshold
        self.started = time.monotonic()
        self.stop_event = threading.Event()
        self.report: dict[str, Any] = {}
        self.replacement: common.Worker | None = None

    def run(self) -> None:
        from django.db import connection

        from django_exotel_sms.models import SmsMessage

        try:
            while not self.stop_event.wait(0.25):
                if SmsMessage.objects.filter(sid__isnull=False).count() < self.threshold:
                    continue
                counts = status_counts()
                self.victim.kill()
                self.replacement = common.Worker(self.replacement_name, self.concurrency)
                self.report = {
                    "at_s": round(time.monotonic() - self.started, 1),
                    "worker": self.victim.node,
                    "replacement": self.replacement_name,
                    "counts_before": counts,
                }
                common.say(
                    f"SIGKILL worker {self.victim.node} at {self.report['at_s']} s: {counts}"
                )
                return
        finally:
            connection.close()


# -- checking -------------------------------------------------------------------------------------


def verify(sandbox: common.Sandbox, targets: list[str]) -> dict[str, Any]:
    from django_exotel_sms import status
    from django_exotel_sms.models import SmsMessage, StatusEvent

    rows = list(SmsMessage.objects.values_list("pk", "to", "sid", "status"))
    at_exotel = sandbox.control.messages()  # sid -> summary, final state reached
    by_number: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for sid, summary in at_exotel.items():
        by_number.setdefault(summary["number"], []).append((sid, summary))
    counts = sandbox.control.recipients()

    lost: list[int] = []  # silently: not sent and not reported failed, or stuck
    mismatched: list[dict[str, Any]] = []
    uncertain_sent = uncertain_unsent = 0
    final_at_exotel: Counter[str] = Counter()
    for pk, to, sid, state in rows:
        copies = by_number.get(to, [])
        if state in (status.PENDING, status.SUBMITTING):
            lost.append(pk)
            continue
        if not copies:
            if state == status.UNCERTAIN:
                uncertain_unsent += 1  # reported uncertain: honest, not silent
            elif state not in (status.REJECTED, status.FAILED):
                lost.append(pk)  # claims progress Exotel never saw
            continue
        exotel_sid, summary = copies[0]
        final_at_exotel[summary["status"]] += 1
        if state == status.UNCERTAIN:
            uncertain_sent += 1
        if sid != exotel_sid or state != summary["status"]:
            mismatched.append(
                {
                    "pk": pk,
                    "db": state,
                    "exotel": summary["status"],
                    "sid_matches": sid == exotel_sid,
                }
            )
    missing_rows = len(set(targets) - {to for _, to, _, _ in rows})
    forged_events = StatusEvent.objects.filter(payload__has_key=FORGED_MARK)
    return {
        "rows": len(rows),
        "missing_rows": missing_rows,
        "lost": len(lost) + missing_rows,
        "lost_examples": lost[:10],
        "sent_twice": sum(1 for c in counts.values() if c > 1),
        "accepted_by_exotel": len(at_exotel),
        "status_mismatches": len(mismatched),
        "mismatch_examples": mismatched[:10],
        "mismatch_kinds": dict(Counter((m["db"], m["exotel"]) for m in mismatched)),
        "uncertain_but_sent": uncertain_sent,
        "uncertain_never_sent": uncertain_unsent,
        "final_statuses_db": status_counts(),
        "final_statuses_exotel": dict(final_at_exotel),
        "forged_events": forged_events.count(),
        "control_events": StatusEvent.objects.filter(payload__has_key=CONTROL_MARK).count(),
        "forged_state_changes": forged_events.filter(applied=True).count(),
        "status_events": StatusEvent.objects.count(),
    }


def api_fault_stats(sandbox: common.Sandbox) -> dict[str, Any]:
    posts: Counter[int] = Counter()
    gets: Counter[int] = Counter()
    for entry in sandbox.control.requests():
        (posts if entry["method"] == "POST" else gets)[entry["status"]] += 1
    total = sum(posts.values())
    faulted = posts.get(429, 0) + posts.get(503, 0)
    callbacks = sandbox.control.callbacks()
    kinds = Counter(c["kind"] for c in callbacks)
    answers = Counter(str(c["status_code"] or c["error"]) for c in callbacks)
    return {
        "post_requests": total,
        "post_statuses": dict(posts),
        "post_faulted_pct": round(100 * faulted / total, 1) if total else 0.0,
        "get_statuses": dict(gets),
        "callback_attempts": len(callbacks),
        "callback_kinds": dict(kinds),
        "callback_answers": dict(answers.most_common(8)),
    }


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="messages in all")
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--singles", type=int, default=200, help="of n, sent one by one")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--jitter", type=float, default=0.03, help="plus uniform(0, jitter) s")
    parser.add_argument("--throttle", type=float, default=0.05, help="share of POSTs got 429")
    parser.add_argument("--unavailable", type=float, default=0.053, help="share got 503")
    parser.add_argument("--duplicate", type=float, default=0.05, help="callbacks posted twice")
    parser.add_argument("--reorder", type=float, default=0.2, help="stale callback after final")
    parser.add_argument("--forged", type=int, default=1_000)
    parser.add_argument("--kill-at", type=float, default=0.3, help="share with Sid at the kill")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="pool size of each")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--claim-timeout", type=float, default=15.0)
    parser.add_argument("--reconcile-every", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up draining after")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    common.require_gunicorn()

    sandbox = common.Sandbox(
        "faults-sandbox",
        latency=args.latency,
        latency_jitter=args.jitter,
        throttle_rate=args.throttle,
        unavailable_rate=args.unavailable,
        retry_after=1,
        callback_duplicate_rate=args.duplicate,
        callback_reorder=args.reorder,
        callback_delay=0.5,
        callback_workers=16,
        seed=args.seed,
        rule=["*17=dnd", "*29=failed:24110", "*43=failed:23035"],
    )
    web_port = common.free_port()
    overrides = {
        "BASE_URL": sandbox.url,
        "CALLBACK_BASE_URL": f"http://{common.HOST}:{web_port}/exotel/",
        "BATCH_PARALLELISM": 2,
    }
    processes: list[common.Process] = [sandbox]
    forger: Forger | None = None
    timeline: list[dict[str, Any]] = []
    reconciles: list[dict[str, Any]] = []
    kill: dict[str, Any] = {}
    killer: Killer | None = None
    drained_at: float | None = None
    try:
        common.setup_django(overrides)
        common.flush_redis()
        common.truncate_tables()
        web = common.Gunicorn("faults-web", workers=args.web_workers, port=web_port)
        processes.append(web)
        workers = [common.Worker(f"f{i + 1}", args.concurrency) for i in range(args.workers)]
        processes.extend(workers)
        for worker in workers:
            worker.wait_ready()

        killer = Killer(
            workers[0], f"f{args.workers + 1}", args.concurrency, int(args.kill_at * args.n)
        )
        monitor = common.CpuMonitor()
        started = time.monotonic()
        killer.start()
        common.say(f"enqueuing {args.n:,} messages")
        sent = enqueue(args.n, args.batch_size, args.singles)
        enqueued_s = time.monotonic() - started
        common.say(f"  enqueued in {enqueued_s:.1f} s")
        forger = Forger(
            web.url,
            args.forged,
            pace=0.05,
            seed=args.seed,
            deadline=time.monotonic() + args.timeout,
        )
        forger.start()

        last_reconcile = last_print = time.monotonic()
        final_passes = 0
        deadline = started + args.timeout
        while time.monotonic() < deadline:
            time.sleep(1.0)
            counts = status_counts()
            now = time.monotonic()
            if killer.replacement is not None and killer.replacement not in processes:
                processes.append(killer.replacement)
            if now - last_reconcile >= args.reconcile_every:
                report = reconcile_pass(args.claim_timeout)
                reconciles.append({"at_s": round(now - started, 1), **report})
                last_reconcile = now
            if now - last_print >= 10:
                timeline.append({"at_s": round(now - started, 1), "counts": counts})
                common.say(f"{now - started:6.0f} s  {counts}")
                last_print = now
            open_rows = counts.get("pending", 0) + counts.get("submitting", 0)
            not_final = sum(
                v
                for k, v in counts.items()
                if k not in ("sent", "failed", "failed-dnd", "rejected")
            )
            if not_final == 0:
                drained_at = now - started
                break
            if open_rows == 0 and sandbox.control.wait_for_callbacks(0.5):
                # Exotel has said all it will: ask it about what is still open, as
                # reconcile does for messages quiet for RECONCILE_AFTER.
                final_passes += 1
                report = reconcile_pass(args.claim_timeout, reconcile_after=0)
                reconciles.append({"at_s": round(now - started, 1), "final": True, **report})
                if final_passes >= 5:
                    break
        cpu = monitor.stop()
        killer.stop_event.set()
        killer.join(timeout=30)
        if killer.replacement is not None and killer.replacement not in processes:
            processes.append(killer.replacement)
        kill = killer.report
        if forger.is_alive():
            common.say("waiting for the forged callbacks to finish")
        forger.join(timeout=max(1.0, args.forged * 0.2))
        forger.stop_event.set()
        # Late duplicates and stale reports still queued at the stand-in must land (and be
        # ignored) before anything is compared.
        callbacks_done = False
        while not callbacks_done and time.monotonic() < deadline + 600:
            callbacks_done = sandbox.control.wait_for_callbacks(60)
        callbacks_done_s = time.monotonic() - started
        result = verify(sandbox, sent["targets"])
        faults = api_fault_stats(sandbox)
    finally:
        if forger is not None:
            forger.stop_event.set()
        if killer is not None:
            killer.stop_event.set()
            killer.join(timeout=30)
            if killer.replacement is not None and killer.replacement not in processes:
                processes.append(killer.replacement)
        for process in reversed(processes):
            process.stop()
        common.flush_redis()

    forged_answers: dict[str, dict[str, int]] = {}
    for (kind, code), count in forger.answers.items():
        forged_answers.setdefault(kind, {})[str(code)] = count
    not_403 = sum(c for (kind, code), c in forger.answers.items() if code != EXPECTED_ANSWER[kind])
    summary = {
        "messages": args.n,
        "drained": drained_at is not None,
        "time_to_drain_s": round(drained_at, 1) if drained_at is not None else None,
        "enqueue_s": round(enqueued_s, 1),
        "all_callbacks_done": callbacks_done,
        "all_callbacks_done_s": round(callbacks_done_s, 1),
        "lost": result["lost"],
        "sent_twice": result["sent_twice"],
        "status_mismatches": result["status_mismatches"],
        "uncertain_never_sent": result["uncertain_never_sent"],
        "uncertain_but_sent": result["uncertain_but_sent"],
        "forged_posted": forger.sent,
        "forged_not_403": not_403,
        "forged_events": result["forged_events"],
        "forged_state_changes": result["forged_state_changes"],
        "control_status": forger.control_status,
        "control_events": result["control_events"],
    }
    common.print_table(
        f"Fault suite: {args.n:,} messages",
        ["figure", "measured", "target", "result"],
        [
            ["messages lost", result["lost"], 0, _met(result["lost"] == 0)],
            ["recipients sent twice", result["sent_twice"], 0, _met(result["sent_twice"] == 0)],
            [
                "final status differs from Exotel's",
                result["status_mismatches"],
                0,
                _met(result["status_mismatches"] == 0),
            ],
            [
                "forged callbacks: state changes",
                result["forged_state_changes"],
                0,
                _met(result["forged_state_changes"] == 0),
            ],
            [
                "forged callbacks: events written",
                result["forged_events"],
                0,
                _met(result["forged_events"] == 0),
            ],
            [
                "left uncertain: never reached Exotel / reached it",
                f"{result['uncertain_never_sent']} / {result['uncertain_but_sent']}",
                "-",
                "",
            ],
            [
                "control: a genuine marked report is found (events)",
                result["control_events"],
                1,
                _met(result["control_events"] == 1),
            ],
            [
                f"forged callbacks not answered 403 (200 if out of scope) (of {forger.sent})",
                not_403,
                0,
                _met(not_403 == 0),
            ],
            [
                "time to drain: every message final (s)",
                summary["time_to_drain_s"] if drained_at is not None else "not drained",
                "-",
                "",
            ],
            [
                "every callback (duplicates, stale) handled (s)",
                summary["all_callbacks_done_s"] if callbacks_done else "not done",
                "-",
                "",
            ],
        ],
    )
    common.print_table(
        "What happened",
        ["fact", "value"],
        [
            ["POST requests", faults["post_requests"]],
            ["answered 429/503", f"{faults['post_faulted_pct']}%"],
            ["POST answers", faults["post_statuses"]],
            ["callback attempts", faults["callback_attempts"]],
            ["callback kinds", faults["callback_kinds"]],
            ["callback answers", faults["callback_answers"]],
            ["worker killed at", f"{kill.get('at_s')} s ({kill.get('worker')})"],
            ["reconcile passes", len(reconciles)],
            ["stale claims reclaimed / marked uncertain", _reclaimed(reconciles)],
            ["uncertain at the end (sent / never sent)", _uncertain(result)],
            ["final statuses (db)", result["final_statuses_db"]],
            ["final statuses (Exotel)", result["final_statuses_exotel"]],
            ["forged answers by kind", forged_answers],
            ["other load on the machine (cores)", cpu["other_cores_avg"]],
        ],
        align=False,
    )
    common.write_result(
        "faults",
        {
            "args": vars(args),
            "summary": summary,
            "verification": result,
            "faults": faults,
            "kill": kill,
            "reconciles": reconciles,
            "timeline": timeline,
            "forged_answers": forged_answers,
            "cpu": cpu,
        },
    )


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _reclaimed(reconciles: list[dict[str, Any]]) -> str:
    pending = sum(r["reclaimed_pending"] for r in reconciles)
    uncertain = sum(r["marked_uncertain"] for r in reconciles)
    return f"{pending} / {uncertain}"


def _uncertain(result: dict[str, Any]) -> str:
    return f"{result['uncertain_but_sent']} / {result['uncertain_never_sent']}"


if __name__ == "__main__":
    main()
