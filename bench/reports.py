"""Reports at scale: the reports page and the roll-up on 100,000 and 1,000,000 messages, and
the memory of a CSV export of each (constant-memory streaming).

    BENCH_DB=bench_reports python bench/reports.py [--sizes 100000,1000000]

Rows are generated in PostgreSQL with one INSERT ... SELECT generate_series (not through
the manager): 30 days of mixed outcomes, two accounts, three senders, codes and prices.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

INSERT = """
INSERT INTO django_exotel_sms_smsmessage
  ("to", sender, body, dlt_template_id, dlt_entity_id, sms_type, encoding, segments, priority,
   custom_field, account, status, status_reason, detailed_status_code, detailed_status,
   sms_units, price, error_message, attempts, created_at, submitted_at, sent_at, updated_at)
SELECT
  '+9198' || lpad(g::text, 8, '0'),
  (ARRAY['SHOPIN', 'BANKIN', 'OTPSND'])[1 + g % 3],
  'Your order ' || g || ' has shipped', '', '', 'transactional', 'plain', 1 + (g % 7 = 0)::int, '',
  '', CASE WHEN g % 10 = 0 THEN 'second' ELSE 'default' END,
  s.status, '', s.code, s.detail,
  CASE WHEN s.status IN ('sent', 'failed') THEN 1 + (g % 7 = 0)::int END,
  CASE WHEN s.status IN ('sent', 'failed') THEN 0.18 * (1 + (g % 7 = 0)::int) END,
  '', 1, t.created, t.created, t.created + make_interval(secs => (g % 97) * 1.7), t.created
FROM generate_series(%(start)s, %(stop)s) AS g
CROSS JOIN LATERAL (
  SELECT now() - make_interval(mins => ((g::bigint * 7919) %% 43200)::int) AS created) t
CROSS JOIN LATERAL (SELECT
  CASE WHEN g % 100 < 88 THEN 'sent' WHEN g % 100 < 93 THEN 'failed-dnd'
       WHEN g % 100 < 97 THEN 'failed' WHEN g % 100 < 98 THEN 'suppressed'
       WHEN g % 100 < 99 THEN 'pending' ELSE 'submitted' END AS status,
  CASE WHEN g % 100 < 88 THEN 20005 WHEN g % 100 < 93 THEN 23005
       WHEN g % 100 < 95 THEN 23040 WHEN g % 100 < 97 THEN 23010 END AS code,
  CASE WHEN g % 100 < 88 THEN 'DELIVERED_TO_HANDSET' ELSE '' END AS detail) s
"""


def fill(start: int, stop: int) -> float:
    from django.db import connection

    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT.replace("%(start)s", str(start))
            .replace("%(stop)s", str(stop - 1))
            .replace("%%", "%")
        )
        cursor.execute("ANALYZE django_exotel_sms_smsmessage")
    return time.perf_counter() - began


def page_seconds(client: object, runs: int = 5) -> float:
    timings = []
    for _ in range(runs + 1):
        began = time.perf_counter()
        response = client.get("/admin/django_exotel_sms/smsreport/?start=" + _start())  # type: ignore[attr-defined]
        assert response.status_code == 200, response.status_code
        timings.append(time.perf_counter() - began)
    return statistics.median(timings[1:])  # the first warms caches


def _start() -> str:
    return (dt.date.today() - dt.timedelta(days=30)).isoformat()


_EXPORT = (
    "import resource, django; django.setup();"
    "from django.core.management import call_command;"
    "call_command('exotel_export', 'messages', '-o', '/dev/null', '--no-progress');"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def export_peak_mib() -> tuple[float, float]:
    """Peak RSS of a fresh process exporting every message as CSV to /dev/null, and seconds."""
    began = time.perf_counter()
    done = subprocess.run(
        [common.PYTHON, "-c", _EXPORT], check=True, cwd=common.ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    return int(done.stdout.strip().splitlines()[-1]) / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    common.setup_django()
    from django.contrib.auth.models import User
    from django.test import Client
    from django.utils import timezone

    from django_exotel_sms.models import SmsMessage
    from django_exotel_sms.reports import rollup

    # The overlap covers transactions still open when a refresh starts; nothing else writes
    # here, and 5 minutes would make each size's run revisit the previous size's changes.
    rollup.OVERLAP = dt.timedelta(seconds=1)
    common.truncate_tables()
    User.objects.filter(username="bench-reports").delete()
    admin = User.objects.create_superuser("bench-reports", password="x")
    client = Client()
    client.force_login(admin)
    results = []
    have = 0
    for size in sizes:
        inserted = fill(have, size)
        have = size
        began = time.perf_counter()
        rollup.refresh(full=True)
        full = time.perf_counter() - began
        # 1,000 status changes of today's messages (the usual case), then 1,000 spread
        # over every day of the month (the worst case: every day is rebuilt).
        recent = SmsMessage.objects.order_by("-created_at").values("pk")[:1000]
        SmsMessage.objects.filter(pk__in=recent).update(status="sent", updated_at=timezone.now())
        began = time.perf_counter()
        report = rollup.refresh()
        incremental = time.perf_counter() - began
        spread = SmsMessage.objects.order_by("-pk").values("pk")[:1000]
        SmsMessage.objects.filter(pk__in=spread).update(status="sent", updated_at=timezone.now())
        began = time.perf_counter()
        spread_report = rollup.refresh()
        incremental_spread = time.perf_counter() - began
        page = page_seconds(client)
        peak, export_s = export_peak_mib()
        results.append(
            {
                "messages": size,
                "insert_s": round(inserted, 1),
                "rollup_full_s": round(full, 2),
                "rollup_today_s": round(incremental, 2),
                "today_days": len(report.days),
                "rollup_spread_s": round(incremental_spread, 2),
                "spread_days": len(spread_report.days),
                "page_median_s": round(page, 3),
                "export_s": round(export_s, 1),
                "export_peak_rss_mib": round(peak, 1),
            }
        )
        common.print_table("reports", list(results[0]), [list(r.values()) for r in results])
    common.write_result("reports", {"machine": common.machine(), "results": results})


if __name__ == "__main__":
    main()
