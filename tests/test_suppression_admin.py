"""The suppression admin: any-format search, filters, add, CSV import and export (POST only)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from django_exotel_sms import suppression
from django_exotel_sms.models import SmsMessage, Suppression

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_exotel_sms_suppression_changelist")
IMPORT = reverse("admin:django_exotel_sms_suppression_import")
TO = "+919876543210"


def _numbers(response) -> list[str]:
    return [obj.number for obj in response.context["cl"].result_list]


def test_search_takes_any_number_format(admin_client):
    suppression.suppress(TO, reason="opt_out")
    suppression.suppress("+919876543211", reason="dnd")
    for term in ("09876543210", "+91 98765 43210", TO):
        assert _numbers(admin_client.get(CHANGELIST, {"q": term})) == [TO]
    assert _numbers(admin_client.get(CHANGELIST, {"q": "nonsense"})) == []


def test_filters(admin_client):
    suppression.suppress(TO, reason="opt_out")
    suppression.suppress("+919876543211", reason="dnd", scope="promotional")
    suppression.suppress("+919876543212", expires_at=timezone.now() - timedelta(days=1))
    assert _numbers(admin_client.get(CHANGELIST, {"reason": "dnd"})) == ["+919876543211"]
    assert _numbers(admin_client.get(CHANGELIST, {"scope": "promotional"})) == ["+919876543211"]
    assert _numbers(admin_client.get(CHANGELIST, {"active": "no"})) == ["+919876543212"]
    assert len(_numbers(admin_client.get(CHANGELIST, {"active": "yes"}))) == 2


def test_add_normalises_and_refuses_a_duplicate_in_another_format(admin_client):
    add = reverse("admin:django_exotel_sms_suppression_add")
    data = {
        "number": "09876543210",
        "reason": "opt_out",
        "scope": "all",
        "note": "",
        "expires_at": "",
    }
    response = admin_client.post(add, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = Suppression.objects.get()
    assert (entry.number, entry.source) == (TO, "admin")
    again = admin_client.post(add, {**data, "number": "+91 98765 43210"})
    assert again.status_code == 200 and Suppression.objects.count() == 1
    bad = admin_client.post(add, {**data, "number": "12"})
    assert "number" in bad.context["adminform"].form.errors


def test_csv_import_then_export(admin_client):
    assert "Import CSV" in admin_client.get(CHANGELIST).content.decode()
    assert admin_client.get(IMPORT).status_code == 200
    assert not Suppression.objects.exists()  # GET changes nothing
    text = (
        "number,reason,scope,note\n"
        "09876543210,opt_out,all,replied STOP\n"
        "+91 98765 43211,dnd,promotional,\n"
        "12,opt_out,all,\n"
        "+919876543212,bored,all,\n"
        "+919876543213,,,\n"
    )
    upload = SimpleUploadedFile("list.csv", text.encode(), content_type="text/csv")
    response = admin_client.post(IMPORT, {"file": upload}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert shown[0] == "Imported 3 suppressions."
    assert "2 line(s) skipped" in shown[1] and "Line 4" in shown[1] and "Line 5" in shown[1]
    rows = set(Suppression.objects.values_list("number", "reason", "scope", "source"))
    assert rows == {
        (TO, "opt_out", "all", "admin import"),
        ("+919876543211", "dnd", "promotional", "admin import"),
        ("+919876543213", "manual", "all", "admin import"),
    }
    pks = list(Suppression.objects.values_list("pk", flat=True))
    exported = admin_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": pks})
    assert exported["Content-Type"].startswith("text/csv")
    lines = b"".join(exported.streaming_content).decode().splitlines()
    assert lines[0] == "number,reason,scope,source,note,expires_at"
    assert f"{TO},opt_out,all,admin import,replied STOP," in lines
    assert len(lines) == 4


def test_import_needs_add_and_change_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(IMPORT).status_code == 403


def test_a_suppressed_message_shows_its_reason_in_the_admin(admin_client):
    suppression.suppress(TO, reason="opt_out")
    message = SmsMessage.objects.send(TO, "Hi")
    assert message.status == "suppressed"
    html = admin_client.get(reverse("admin:django_exotel_sms_smsmessage_change", args=[message.pk]))
    assert "opt_out" in html.content.decode()
    listed = admin_client.get(reverse("admin:django_exotel_sms_smsmessage_changelist"))
    assert "opt_out" in listed.content.decode()


def _template():
    from django_exotel_sms.models import SmsTemplate

    return SmsTemplate.objects.create(name="otp", body="Your OTP is {#numeric#}.")


def test_test_send_to_a_suppressed_number_says_it_was_not_sent(admin_client):
    suppression.suppress(TO, reason="opt_out")
    tpl = _template()
    url = reverse("admin:django_exotel_sms_smstemplate_test_send", args=[tpl.pk])
    response = admin_client.post(url, {"to": "09876543210", "var1": "4321"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [f"Test SMS to {TO} saved but not sent: suppressed (opt_out)."]
    assert SmsMessage.objects.get().status == "suppressed"


def test_over_a_recipient_limit_the_admin_shows_an_error(admin_client, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RECIPIENT_LIMITS": {"*": "1/hour"}}
    tpl = _template()
    url = reverse("admin:django_exotel_sms_smstemplate_test_send", args=[tpl.pk])
    assert admin_client.post(url, {"to": TO, "var1": "1"}).status_code == 302
    refused = admin_client.post(url, {"to": TO, "var1": "2"})
    assert refused.status_code == 200
    assert "Too many messages to +919876543210" in " ".join(refused.context["form"].errors["to"])
    original = SmsMessage.objects.get()
    changelist = reverse("admin:django_exotel_sms_smsmessage_changelist")
    data = {"action": "resend_messages", "_selected_action": [original.pk], "post": "yes"}
    response = admin_client.post(changelist, data, follow=True)
    shown = " ".join(str(m) for m in response.context["messages"])
    assert "could not be resent" in shown and "Too many messages" in shown
    assert SmsMessage.objects.count() == 1


def test_a_batch_page_shows_its_suppressed_recipients(admin_client):
    suppression.suppress(TO, reason="opt_out")
    batch = SmsMessage.objects.send_bulk(to=[TO, "+919876543211"], body="Hi")
    page = admin_client.get(reverse("admin:django_exotel_sms_smsbatch_change", args=[batch.pk]))
    html = page.content.decode()
    assert 'class="exotel-bar-not_sent" title="not sent: 1"' in html
    assert "1 of 2 final" in html
