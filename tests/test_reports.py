"""Reports: the daily roll-up stays a true recount; the admin page and its numbers."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from django_exotel_sms import callbacks, status
from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate
from django_exotel_sms.reports import queries, rollup
from django_exotel_sms.reports.models import TTF_BOUNDS, DailyStat

pytestmark = pytest.mark.django_db

KEYS = rollup.KEYS


def full_recount() -> Counter[tuple[object, ...]]:
    """Every measure per (day, key), counted in Python from the message rows themselves."""
    found: Counter[tuple[object, ...]] = Counter()
    for m in SmsMessage.objects.all():
        key = (timezone.localdate(m.created_at), *(getattr(m, k) for k in KEYS))
        found[(*key, "messages")] += 1
        found[(*key, "units")] += m.sms_units or 0
        found[(*key, "price")] += m.price or 0
        found[(*key, "segments")] += m.segments
        if m.sms_units is None and m.status not in rollup.UNBILLABLE:
            found[(*key, "unbilled")] += m.segments
        if m.status in rollup.TIMED_STATUSES and m.sent_at and m.submitted_at:
            seconds = (m.sent_at - m.submitted_at).total_seconds()
            bucket = next((i for i, b in enumerate(TTF_BOUNDS) if seconds < b), len(TTF_BOUNDS))
            found[(*key, f"h{bucket}")] += 1
    return +found


def rolled_up() -> Counter[tuple[object, ...]]:
    found: Counter[tuple[object, ...]] = Counter()
    for row in DailyStat.objects.all():
        key = (row.day, *(getattr(row, k) for k in KEYS))
        found[(*key, "messages")] += row.messages
        found[(*key, "units")] += row.units
        found[(*key, "price")] += row.price
        found[(*key, "segments")] += row.segments
        found[(*key, "unbilled")] += row.unbilled_segments
        for i, n in enumerate(row.ttf_histogram):
            found[(*key, f"h{i}")] += n
    return +found


def form(
    sid: str, word: str, code: int, when: str, units: str = "", price: str = ""
) -> dict[str, str]:
    data = {"SmsSid": sid, "Status": word, "DetailedStatusCode": str(code), "DateSent": when}
    data["DetailedStatus"] = status.describe_code(code).name if status.describe_code(code) else ""
    if units:
        data["SmsUnits"] = units
    if price:
        data["Price"] = price
    return data


def send_batch(
    django_capture_on_commit_callbacks, numbers: list[str], **options: object
) -> SmsBatch:
    with django_capture_on_commit_callbacks(execute=True):
        return SmsMessage.objects.send_bulk(
            to=numbers, body="Sale today", send_async=False, **options
        )


FINALS = [
    ("sent", 20005, "1", "0.18"),
    ("failed-dnd", 23005, "", ""),
    ("failed", 23010, "1", "0.18"),
    ("failed", 23040, "", ""),
]


def test_rollup_equals_a_full_recount_after_duplicated_and_reordered_callbacks(
    client, django_capture_on_commit_callbacks
):
    rng = random.Random(15)
    numbers = [f"+9198765{i:05d}" for i in range(60)]
    batch = send_batch(django_capture_on_commit_callbacks, numbers)
    send_batch(django_capture_on_commit_callbacks, numbers[:20], sender="SHOPIN")
    # Half of the first batch was created "yesterday": the roll-up spans two days.
    yesterday = timezone.now() - timedelta(days=1)
    first_half = list(batch.messages.order_by("pk").values_list("pk", flat=True)[:30])
    SmsMessage.objects.filter(pk__in=first_half).update(created_at=yesterday)
    # Local final statuses are counted too.
    SmsMessage.objects.create(
        to=numbers[0], body="x", status=status.SUPPRESSED, status_reason="dnd"
    )
    SmsMessage.objects.create(to=numbers[1], body="x", status=status.CANCELLED)

    events = []
    for message in SmsMessage.objects.filter(sid__isnull=False).select_related("batch"):
        token = callbacks.make_token(callbacks.BATCH, message.batch_id, message.batch.created_at)
        path = reverse("django_exotel_sms:status-callback", args=[token])
        final, code, units, price = rng.choice(FINALS)
        sent = timezone.now() + timedelta(seconds=rng.choice([0, 3, 40, 700, 5000]))
        when = sent.strftime("%Y-%m-%d %H:%M:%S")
        steps = [
            form(message.sid, "queued", 21010, ""),
            form(message.sid, "submitted", 21020, ""),
            form(message.sid, final, code, when, units, price),
        ]
        # Duplicates of every step, and a late contradicting final now and then.
        steps += [dict(s) for s in steps]
        if rng.random() < 0.3:
            steps.append(form(message.sid, "sent", 20005, when, "2", "0.36"))
        events += [(path, s) for s in steps]
    rng.shuffle(events)

    rollup.refresh()  # a first run before any callback
    for i, (path, data) in enumerate(events):
        assert client.post(path, data).status_code == 200
        if i % 50 == 0:
            rollup.refresh()  # incremental runs interleaved with the callbacks
    rollup.refresh()

    expected = full_recount()
    assert rolled_up() == expected
    assert sum(n for k, n in expected.items() if k[-1] == "messages") == SmsMessage.objects.count()
    assert {k[1 + KEYS.index("status")] for k in expected} >= {"sent", "suppressed", "cancelled"}
    assert any(k[-1].startswith("h") for k in expected)  # time-to-final was measured

    # A full rebuild gives the same rows.
    rollup.refresh(full=True)
    assert rolled_up() == expected


def test_refresh_revisits_only_days_touched_since_the_last_run():
    old = SmsMessage.objects.create(to="+919876500001", body="x", status=status.SENT)
    SmsMessage.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(days=3), updated_at=timezone.now() - timedelta(days=3)
    )
    SmsMessage.objects.create(to="+919876500002", body="x")
    first = rollup.refresh()
    assert len(first.days) == 2
    second = rollup.refresh()
    assert second.days == [timezone.localdate()]  # the pending message of today (overlap)
    # A late change to the old message brings its day back.
    SmsMessage.objects.filter(pk=old.pk).update(status=status.FAILED, updated_at=timezone.now())
    third = rollup.refresh()
    assert timezone.localdate() - timedelta(days=3) in third.days
    assert DailyStat.objects.get(day=timezone.localdate() - timedelta(days=3)).status == "failed"


def test_rollup_command_and_task(capsys):
    from django_exotel_sms import tasks

    SmsMessage.objects.create(to="+919876500003", body="x")
    call_command("exotel_rollup", "--full")
    assert "Rebuilt 1 day(s)" in capsys.readouterr().out
    assert tasks.rollup.run()["rows"] == 1
    assert DailyStat.objects.get().messages == 1


@pytest.mark.parametrize(
    ("histogram", "p", "expected"),
    [
        ([], 50, None),
        ([10] + [0] * 16, 50, 0.5),  # all under 1 s: interpolated in [0, 1)
        ([0, 0, 4, 4] + [0] * 13, 50, 5.0),  # half in [2, 5), half in [5, 10)
        ([0, 0, 4, 4] + [0] * 13, 75, 7.5),
        ([0] * 16 + [3], 99, 86400.0),  # beyond the last bound: the bound
    ],
)
def test_percentile_from_histogram(histogram, p, expected):
    assert queries.percentile(histogram, p) == expected


# -- the admin page ---------------------------------------------------------------------


def staff(*codenames: str) -> User:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)


REPORTS = "admin:django_exotel_sms_smsreport_changelist"


def make_outcomes() -> dict[str, int]:
    """Messages of today with final outcomes, written directly; returns the counts."""
    template = SmsTemplate.objects.create(name="otp", body="Your OTP is {#var#}")
    now = timezone.now()
    rows = (
        [dict(status=status.SENT, detailed_status_code=20005, sms_units=1, price=Decimal("0.2"))]
        * 5
        + [
            dict(
                status=status.FAILED,
                detailed_status_code=23010,
                detailed_status="FAILED_INVALID_DESTINATION_NUMBER",
            )
        ]
        * 3
        + [dict(status=status.FAILED_DND, detailed_status_code=23005)] * 2
        + [dict(status=status.EXPIRED)]
        + [dict(status=status.PENDING, segments=2)]
    )
    for i, extra in enumerate(rows):
        SmsMessage.objects.create(
            to=f"+91987650{i:04d}",
            body="x",
            template=template,
            submitted_at=now,
            sent_at=now + timedelta(seconds=4) if extra["status"] == status.SENT else None,
            **extra,
        )
    return Counter(r["status"] for r in rows)


def test_reports_page_needs_view_permission_on_messages(client):
    client.force_login(staff())
    assert client.get(reverse(REPORTS)).status_code == 403
    index = client.get(reverse("admin:index"))
    assert reverse(REPORTS) not in index.content.decode()


def test_reports_page_shows_the_rolled_up_counts_and_links(client):
    counts = make_outcomes()
    rollup.refresh()
    client.force_login(staff("view_smsmessage"))
    assert reverse(REPORTS) in client.get(reverse("admin:index")).content.decode()
    response = client.get(reverse(REPORTS))
    assert response.status_code == 200
    context = response.context
    assert context["total"].total == SmsMessage.objects.count() == 12
    assert context["total"].counts == dict(counts)
    assert round(context["total"].delivery_rate, 2) == round(100 * 5 / 10, 2)
    assert context["not_sent"] == 1
    assert context["cost_totals"]["units"] == 5
    assert context["cost_totals"]["price"] == Decimal("1.0")
    # Predicted segments of what Exotel has not billed (pending 2, failed 5 x 1), not the expired.
    assert context["cost_totals"]["unbilled_segments"] == 7
    failures = {item["row"].code: item for item in context["failures"]}
    assert failures[23010]["row"].messages == 3
    assert context["stuck"].pending == 1
    html = response.content.decode()
    assert html.count('<svg class="exotel-chart"') == 4
    assert '<script src="http' not in html  # nothing loaded from the network
    # The failure link opens the message list filtered to exactly those messages.
    listed = client.get(failures[23010]["url"])
    assert listed.status_code == 200
    shown = listed.context["cl"].queryset
    assert sorted(shown.values_list("pk", flat=True)) == sorted(
        SmsMessage.objects.filter(detailed_status_code=23010).values_list("pk", flat=True)
    )


def test_reports_page_filters(client):
    make_outcomes()
    other = SmsMessage.objects.create(
        to="+919876511111", body="x", status=status.SENT, account="second"
    )
    rollup.refresh()
    client.force_login(staff("view_smsmessage"))
    response = client.get(reverse(REPORTS), {"account": "second"})
    assert response.context["total"].total == 1
    assert ("second", "second") in response.context["choices"]["account"]
    response = client.get(reverse(REPORTS), {"start": "2001-01-01", "end": "2001-01-31"})
    assert response.context["total"].total == 0
    response = client.get(reverse(REPORTS), {"start": "nope"})
    assert "not a date" in response.context["filter_error"]
    assert other.pk


def test_short_ranges_are_shown_by_hour_live(client):
    today = timezone.localdate()
    midnight = timezone.make_aware(timezone.datetime.combine(today, timezone.datetime.min.time()))
    for hour, st in [(1, status.SENT), (1, status.FAILED), (5, status.SENT)]:
        m = SmsMessage.objects.create(to="+919876500009", body="x", status=st)
        SmsMessage.objects.filter(pk=m.pk).update(created_at=midnight + timedelta(hours=hour))
    report_filter = queries.ReportFilter(start=today, end=today)
    hours = queries.hourly(report_filter)  # no roll-up run: read live
    assert len(hours) == 24
    assert hours[1].counts == {"sent": 1, "failed": 1} and hours[5].counts == {"sent": 1}
    assert sum(h.total for h in hours) == 3
    client.force_login(staff("view_smsmessage"))
    response = client.get(reverse(REPORTS), {"start": today.isoformat(), "end": today.isoformat()})
    assert response.context["by_hour"] is True
    assert "Messages per hour" in response.content.decode()
    assert client.get(reverse(REPORTS)).context["by_hour"] is False


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_do_not_double_count():
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions: PostgreSQL")
    for i in range(40):
        SmsMessage.objects.create(to=f"+91987650{i:04d}", body="x", status=status.SENT)
    rollup.refresh()
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(5):
                barrier.wait(timeout=30)
                rollup.rebuild_days([timezone.localdate()])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert rolled_up() == full_recount()
    assert DailyStat.objects.get().messages == 40
