"""CSV exports: admin (changelist filters and search), batch outcomes, report tables,
the REST endpoints and ``exotel_export``; numbers masked without the permission."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse

from django_exotel_sms import phone, status
from django_exotel_sms.models import SmsBatch, SmsMessage
from django_exotel_sms.reports import rollup

pytestmark = pytest.mark.django_db

NUMBERS = ["+919876543210", "+919876543211", "+919876543212", "+919876543213"]


def user(*codenames: str, staff: bool = True) -> User:
    made = User.objects.create_user("finance", password="pw", is_staff=staff)
    made.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=made.pk)


def rows_of(response) -> list[dict[str, str]]:
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def messages() -> SmsBatch:
    batch = SmsBatch.objects.create(kind=SmsBatch.KIND_STATIC, total=3)
    for i, st in enumerate([status.SENT, status.FAILED, status.SUPPRESSED]):
        SmsMessage.objects.create(to=NUMBERS[i], body="x", status=st, batch=batch, sid=f"s{i}")
    SmsMessage.objects.create(to=NUMBERS[3], body="x", status=status.SENT, custom_field="=cmd()")
    return batch


def test_mask_number():
    assert phone.mask("+919876543210") == "+9198******10"
    assert phone.mask("12345") == "*****"


def test_admin_export_honours_the_changelist_filters_and_search(client, messages):
    client.force_login(user("view_smsmessage"))
    url = reverse("admin:django_exotel_sms_smsreport_export_messages")
    found = rows_of(client.get(url, {"status__exact": "sent"}))
    assert sorted(r["id"] for r in found) == sorted(
        str(pk) for pk in SmsMessage.objects.filter(status="sent").values_list("pk", flat=True)
    )
    assert all(r["to"].startswith("+9198******") for r in found)
    # The changelist's search (a national number finds the E.164 one), and a filter.
    searched = rows_of(client.get(url, {"q": "09876543211"}))
    assert [r["status"] for r in searched] == ["failed"]
    in_batch = rows_of(client.get(url, {"batch__id__exact": messages.pk}))
    assert len(in_batch) == 3
    # A formula-looking text cell is defused.
    assert {r["custom_field"] for r in found} == {"", "'=cmd()"}
    assert client.get(url, {"batch__id__exact": "x"}).status_code == 400
    # The changelist links to it with its own query string.
    listing = client.get(reverse("admin:django_exotel_sms_smsmessage_changelist"), {"q": "x1"})
    assert f'{url}?q=x1"' in listing.content.decode()


def test_full_numbers_need_the_permission(client, messages):
    client.force_login(user("view_smsmessage", "export_full_numbers"))
    url = reverse("admin:django_exotel_sms_smsreport_export_batch", args=[messages.pk])
    found = rows_of(client.get(url))
    assert [r["to"] for r in found] == NUMBERS[:3]
    assert [r["status"] for r in found] == ["sent", "failed", "suppressed"]


def test_exports_need_view_permission(client, messages):
    client.force_login(user())
    for url in (
        reverse("admin:django_exotel_sms_smsreport_export_messages"),
        reverse("admin:django_exotel_sms_smsreport_export_batch", args=[messages.pk]),
        reverse("admin:django_exotel_sms_smsreport_export_table", args=["daily"]),
    ):
        assert client.get(url).status_code == 403


def test_report_table_export(client, messages):
    rollup.refresh()
    client.force_login(user("view_smsmessage"))
    url = reverse("admin:django_exotel_sms_smsreport_export_table", args=["daily"])
    found = rows_of(client.get(url))
    assert len(found) == 14
    assert sum(int(r["messages"]) for r in found) == 4
    assert sum(int(r["suppressed"]) for r in found) == 1
    assert client.get(url, {"start": "x"}).status_code == 400


def test_rest_exports(client, messages):
    client.force_login(user("view_smsmessage", staff=False))
    found = rows_of(client.get("/api/sms/exports/messages/", {"status": "sent,failed"}))
    assert sorted(r["status"] for r in found) == ["failed", "sent", "sent"]
    assert all("*" in r["to"] for r in found)
    batch = rows_of(client.get(f"/api/sms/exports/batches/{messages.pk}/"))
    assert len(batch) == 3
    rollup.refresh()
    table = rows_of(client.get("/api/sms/exports/reports/failures/"))
    assert [(r["status"], r["messages"]) for r in table] == [("failed", "1")]
    assert client.get("/api/sms/exports/messages/", {"status": "nope"}).status_code == 400
    assert client.get("/api/sms/exports/batches/999999/").status_code == 404


def test_rest_exports_need_view_permission(client, messages):
    client.force_login(user(staff=False))
    assert client.get("/api/sms/exports/messages/").status_code == 403


def test_export_command(tmp_path, messages, capsys):
    out = tmp_path / "all.csv"
    call_command("exotel_export", "messages", "--status", "sent", "-o", str(out))
    found = list(csv.DictReader(out.open()))
    assert len(found) == 2 and all("*" in r["to"] for r in found)
    assert "2/2 rows" in capsys.readouterr().err
    call_command("exotel_export", "batch", str(messages.pk), "--full-numbers", "-o", str(out))
    assert [r["to"] for r in csv.DictReader(out.open())] == NUMBERS[:3]
    rollup.refresh()
    call_command("exotel_export", "report", "cost-by-sender", "-o", str(out))
    assert sum(int(r["messages"]) for r in csv.DictReader(out.open())) == 4


def test_batch_page_links_to_its_export_and_report(client, messages):
    client.force_login(user("view_smsmessage", "view_smsbatch"))
    page = client.get(reverse("admin:django_exotel_sms_smsbatch_change", args=[messages.pk]))
    html = page.content.decode()
    assert reverse("admin:django_exotel_sms_smsreport_export_batch", args=[messages.pk]) in html
    assert f"?batch={messages.pk}&amp;start=" in html
