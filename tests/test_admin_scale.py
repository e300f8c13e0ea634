"""The message admin stays usable on big tables: queries bounded, never a full COUNT(*)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_exotel_sms import status
from django_exotel_sms.admin.pagination import CappedCountPaginator
from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate, StatusEvent

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_exotel_sms_smsmessage_changelist")
MAX_QUERIES = 8  # session, user, template choices, [batch name], capped count, page rows
STATUSES = [status.SENT, status.FAILED, status.QUEUED, status.PENDING]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world():
    templates = [
        SmsTemplate.objects.create(name=f"t{i}", body=f"Code {{#numeric#}} ({i})") for i in range(3)
    ]
    batches = [SmsBatch.objects.create(kind="static", name=f"b{i}") for i in range(2)]
    return {"templates": templates, "batches": batches, "created": 0}


def grow(world, upto: int) -> None:
    """Add messages (and two status events each) until there are ``upto`` of them."""
    start = world["created"]
    now = timezone.now()
    rows = [
        SmsMessage(
            to=f"+9198{i:08d}",
            sender="ACMEIN",
            body=f"Code {i} (0)",
            template=world["templates"][i % 3],
            batch=world["batches"][i % 2],
            sid=f"SID{i}",
            custom_field=f"order-{i}",
            status=STATUSES[i % 4],
            detailed_status_code=20005 if i % 4 == 0 else None,
        )
        for i in range(start, upto)
    ]
    SmsMessage.objects.bulk_create(rows, batch_size=500)
    SmsMessage.objects.filter(created_at__isnull=True).update(created_at=now)
    pks = SmsMessage.objects.order_by("pk").values_list("pk", flat=True)[start:upto]
    events = [
        StatusEvent(message_id=pk, status=s, source=StatusEvent.SOURCE_API)
        for pk in pks
        for s in (status.QUEUED, status.SENT)
    ]
    StatusEvent.objects.bulk_create(events, batch_size=500)
    world["created"] = upto
    SmsMessage.objects.filter(pk__in=list(pks)[:5]).update(created_at=now - timedelta(days=40))


def views(world) -> dict[str, str]:
    batch = world["batches"][0]
    template = world["templates"][1]
    return {
        "plain": "",
        "page 2": "?p=2",
        "status": "?status__exact=sent",
        "detailed": "?detailed_status_code=20005",
        "batch": f"?batch__id__exact={batch.pk}",
        "template": f"?template__id__exact={template.pk}",
        "created": "?created=7d",
        "search number": "?q=09800000007",
        "search sid": "?q=SID11",
        "search custom": "?q=order-12",
        "combined": f"?status__exact=sent&batch__id__exact={batch.pk}&created=30d",
    }


def measure(client, world) -> dict[str, tuple[int, list[str]]]:
    found = {}
    for name, query in views(world).items():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(CHANGELIST + query)
        assert response.status_code == 200, (name, response.status_code)
        found[name] = (len(ctx.captured_queries), [q["sql"] for q in ctx.captured_queries])
    return found


def unbounded_counts(sql_list: list[str]) -> list[str]:
    """COUNT queries not limited by a LIMIT-ed subquery, i.e. ones that scan everything."""
    return [
        sql for sql in sql_list if re.search(r"COUNT\(", sql, re.I) and " LIMIT " not in sql.upper()
    ]


def test_changelist_queries_do_not_grow_with_rows(admin_client, world):
    grow(world, 200)
    admin_client.get(CHANGELIST)  # warm the session
    small = measure(admin_client, world)
    grow(world, 2000)
    assert SmsMessage.objects.count() == 2000
    assert StatusEvent.objects.count() == 4000
    large = measure(admin_client, world)
    for name in small:
        assert small[name][0] == large[name][0], (name, small[name][1], large[name][1])
        assert large[name][0] <= MAX_QUERIES, (name, large[name][1])
        assert unbounded_counts(large[name][1]) == [], name
    # The filters and searches do find rows (the page is not empty by accident).
    response = admin_client.get(CHANGELIST + "?q=09800000007")
    assert [m.to for m in response.context["cl"].result_list] == ["+919800000007"]
    response = admin_client.get(CHANGELIST + views(world)["combined"])
    expected = SmsMessage.objects.filter(
        status=status.SENT,
        batch=world["batches"][0],
        created_at__gte=timezone.now() - timedelta(days=30),
    ).count()
    assert 0 < expected < SmsMessage.objects.filter(status=status.SENT).count()
    assert response.context["cl"].result_count == expected


def test_no_full_count_even_beyond_the_cap(admin_client, world, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 500)
    grow(world, 2000)
    admin_client.get(CHANGELIST)
    for name, query in views(world).items():
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(CHANGELIST + query)
        assert response.status_code == 200
        sql = [q["sql"] for q in ctx.captured_queries]
        assert len(sql) <= MAX_QUERIES, (name, sql)
        assert unbounded_counts(sql) == [], name
        assert all("DISTINCT" not in s.upper() for s in sql), name
    response = admin_client.get(CHANGELIST)
    cl = response.context["cl"]
    assert cl.paginator.capped and cl.result_count == 500
    assert len(cl.result_list) == 100
    html = response.content.decode()
    assert "more than 500" in html or "about " in html
    # Paging stops at the cap rather than OFFSET-ing into millions.
    assert admin_client.get(CHANGELIST + "?p=5").status_code == 200
    assert admin_client.get(CHANGELIST + "?p=6").status_code == 302


def test_the_checker_would_notice_a_full_count(admin_client, world, monkeypatch):
    """Guard for the guard: Django's default full count is caught by ``unbounded_counts``."""
    from django_exotel_sms.admin.message_admin import SmsMessageAdmin

    grow(world, 200)
    monkeypatch.setattr(SmsMessageAdmin, "show_full_result_count", True)
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(CHANGELIST + "?status__exact=sent")
    assert unbounded_counts([q["sql"] for q in ctx.captured_queries])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner estimate is PostgreSQL's")
def test_postgres_shows_the_planner_estimate_for_the_whole_table(admin_client, world, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 500)
    grow(world, 2000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {SmsMessage._meta.db_table}")
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST)
    assert "about 2,000 SMS messages" in response.content.decode()
    assert any("reltuples" in q["sql"] for q in ctx.captured_queries)
    assert unbounded_counts([q["sql"] for q in ctx.captured_queries]) == []
