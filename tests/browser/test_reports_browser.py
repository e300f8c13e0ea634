"""The reports page in a real browser, with messages sent through the local Exotel.

The numbers on the page are checked against direct counts of the message table, the page
is saved at 1366 and 1920 px wide, and a failure code's link leads to those messages.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from django_exotel_sms import status
from django_exotel_sms.models import SmsMessage, SmsTemplate
from django_exotel_sms.reports import rollup

from ..helpers import numbers, wait_until
from .test_admin_browser import _login, exotel  # noqa: F401 -- the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORTS = "/admin/django_exotel_sms/smsreport/"


def _history(days: int = 13) -> None:
    """Earlier days of mixed outcomes, so the charts have a shape (written directly)."""
    rng = random.Random(7)
    template = SmsTemplate.objects.create(name="order-shipped", body="Your order {#var#} shipped")
    now = timezone.now()
    rows = []
    for day in range(1, days + 1):
        for i in range(rng.randint(20, 60)):
            outcome = rng.choices(
                [
                    (status.SENT, 20005),
                    (status.FAILED, 23040),
                    (status.FAILED_DND, 23005),
                    (status.EXPIRED, None),
                ],
                weights=[85, 6, 6, 3],
            )[0]
            submitted = now - timedelta(days=day, minutes=i)
            final = outcome[0] != status.EXPIRED
            rows.append(
                SmsMessage(
                    to=f"+91981{day:02d}{i:05d}",
                    body="x",
                    template=template,
                    sender="SHOPIN",
                    status=outcome[0],
                    detailed_status_code=outcome[1],
                    submitted_at=submitted if final else None,
                    sent_at=submitted + timedelta(seconds=rng.expovariate(1 / 20))
                    if final
                    else None,
                    sms_units=1 if final else None,
                    price=Decimal("0.18") if final else None,
                )
            )
    made = SmsMessage.objects.bulk_create(rows)
    for message in made:
        SmsMessage.objects.filter(pk=message.pk).update(
            created_at=message.submitted_at or now - timedelta(days=2)
        )


def test_reports_page(page, live_server, admin_user, exotel, screens):  # noqa: F811
    targets = numbers(30, start=900)
    for number in targets[:3]:
        exotel.set_outcome(number, "dnd")
    for number in targets[3:5]:
        exotel.set_outcome(number, "failed:23040")
    exotel.set_outcome(targets[5], "stuck")
    SmsMessage.objects.send_bulk(to=targets, body="Sale: 20% off today")
    assert wait_until(
        lambda: SmsMessage.objects.filter(status__in=status.TERMINAL_STATUSES).count() == 29, 30
    )
    _history()
    rollup.refresh()

    _login(page, live_server, admin_user, screens)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(live_server.url + "/admin/django_exotel_sms/")
    page.click(f"a[href='{REPORTS}']")
    page.wait_for_selector("#kpis")

    def kpi(name: str) -> str:
        return page.inner_text(f"[data-kpi='{name}']").strip()

    assert int(kpi("messages")) == SmsMessage.objects.count()
    assert int(kpi("sent")) == SmsMessage.objects.filter(status=status.SENT).count()
    assert int(kpi("not-sent")) == SmsMessage.objects.filter(status=status.EXPIRED).count()
    for row in page.locator("#status-totals tbody tr").all():
        name = row.get_attribute("data-status")
        assert (
            int(row.locator("td.n").first.inner_text())
            == SmsMessage.objects.filter(status=name).count()
        )
    for row in page.locator("#failures tbody tr").all():
        code = int(row.get_attribute("data-code") or 0)
        shown = int(row.locator("td.n").first.inner_text())
        assert shown == SmsMessage.objects.filter(detailed_status_code=code).count()
    assert page.inner_text("[data-stuck='awaiting']") == "1"  # the stuck one, at "submitted"
    assert page.locator("svg.exotel-chart").count() == 4
    screens.shot("reports 1366")
    page.set_viewport_size({"width": 1920, "height": 1080})
    screens.shot("reports 1920")

    # From a failure code to the filtered message list.
    page.click("#failures tr[data-code='23005'] a.failure-link")
    page.wait_for_selector("#result_list")
    expected = SmsMessage.objects.filter(detailed_status_code=23005).count()
    assert page.locator("#result_list tbody tr").count() == expected
    screens.shot("failures 23005 in the message list")

    # The list's Export CSV gives exactly the messages it shows.
    with page.expect_download() as download:
        page.click("a.exotel-export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(int(r["id"]) for r in rows) == sorted(
        SmsMessage.objects.filter(detailed_status_code=23005).values_list("pk", flat=True)
    )
    assert {r["detailed_status_code"] for r in rows} == {"23005"}
