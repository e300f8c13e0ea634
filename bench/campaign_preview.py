"""The admin campaign preview of a 100,000-row CSV: time and peak memory, vs 10,000 rows.

    python bench/campaign_preview.py [--sizes 10000,100000]

For each size a CSV (a name, an order number, a phone number, a language: every third row
Hindi, every 50th number invalid) is written to the campaigns' upload storage, and
``campaigns.summarize`` -- what the preview page computes -- reads it once, streaming, checking
every row with the same ``Composer`` send_bulk uses. Reported: rows per second, and the
process's peak RSS above its RSS before the call (``VmHWM`` reset first) next to the file's
size. Nothing is sent and no message is saved. Needs PostgreSQL only (for the template rows).
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

EN = "Dear {#var#}, your order {#numeric#} has shipped. - ACME"
HI = "प्रिय {#var#}, आपका ऑर्डर {#numeric#} भेज दिया गया है। - ACME"


def write_csv(size: int) -> tuple[str, int]:
    from django.core.files.base import ContentFile

    from django_exotel_sms import campaigns

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["customer", "order", "mobile", "language"])
    for i, number in enumerate(common.number_stream(size)):
        if i % 50 == 49:
            number = f"12{i:05d}"
        writer.writerow([f"C{i}", str(100000 + i), number, "hi" if i % 3 == 0 else "en"])
    data = out.getvalue().encode()
    store = campaigns.storage()
    name = store.save(f"bench-{size}.csv", ContentFile(data))
    return name, len(data)


def measure(size: int) -> dict[str, Any]:
    from django_exotel_sms import campaigns
    from django_exotel_sms.models import SmsTemplate

    tpl = SmsTemplate.objects.get(name="bench-campaign")
    path, file_bytes = write_csv(size)
    draft = campaigns.Draft(
        token="bench",
        path=path,
        file_name="bench.csv",
        template_id=tpl.pk,
        body="",
        sender="",
        sms_type="",
        language="",
        name="",
    )
    draft.number_column, draft.language_column, draft.variable_columns = campaigns.auto_map(
        campaigns.read_header(path), 2
    )
    try:
        gc.collect()
        common.reset_peak_rss(os.getpid())
        before = common.vm_rss_kib(os.getpid())
        cpu = common.CpuMonitor()
        started = time.perf_counter()
        summary = campaigns.summarize(draft, tpl)
        elapsed = time.perf_counter() - started
        load = cpu.stop()
        peak = common.vm_hwm_kib(os.getpid())
    finally:
        campaigns.storage().delete(path)
    assert summary.rows == size and summary.invalid == size // 50, (summary.rows, summary.invalid)
    return {
        "rows": size,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(size / elapsed),
        "file_kib": round(file_bytes / 1024),
        "rss_before_kib": before,
        "peak_above_before_kib": peak - before,
        "valid": summary.valid,
        "invalid": summary.invalid,
        "units": summary.units,
        "other_cores_avg": load["other_cores_avg"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    common.setup_django()
    from django_exotel_sms.models import SmsTemplate, SmsTemplateVariant

    SmsTemplate.objects.filter(name="bench-campaign").delete()
    tpl = SmsTemplate.objects.create(
        name="bench-campaign", body=EN, dlt_template_id="1107000000000000901"
    )
    SmsTemplateVariant.objects.create(
        template=tpl, language="hi", body=HI, dlt_template_id="1107000000000000902"
    )
    results = [measure(int(size)) for size in args.sizes.split(",")]
    SmsTemplate.objects.filter(name="bench-campaign").delete()
    common.print_table(
        "Campaign preview (admin): one streaming pass, every row checked",
        ["rows", "seconds", "rows/s", "file KiB", "peak above before, KiB", "other load"],
        [
            [
                r["rows"],
                r["seconds"],
                r["rows_per_second"],
                r["file_kib"],
                r["peak_above_before_kib"],
                r["other_cores_avg"],
            ]
            for r in results
        ],
    )
    common.write_result("campaign_preview", {"results": results})


if __name__ == "__main__":
    main()
