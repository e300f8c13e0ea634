"""Campaigns from the admin: permissions, the preview's counts, the one confirm, the audit."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from django_exotel_sms import campaigns, phone
from django_exotel_sms.models import (
    Campaign,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    SmsTemplateVariant,
)

from .helpers import numbers

pytestmark = pytest.mark.django_db

EN_ID, HI_ID = "1107000000000000201", "1107000000000000202"
EN = "Dear {#var#}, your order {#numeric#} has shipped. - ACME"
HI = "प्रिय {#var#}, आपका ऑर्डर {#numeric#} भेज दिया गया है। - ACME"
COMPOSE = "admin:django_exotel_sms_campaign_compose"


@pytest.fixture
def shipped() -> SmsTemplate:
    tpl = SmsTemplate.objects.create(name="shipped", body=EN, dlt_template_id=EN_ID)
    SmsTemplateVariant.objects.create(template=tpl, language="hi", body=HI, dlt_template_id=HI_ID)
    return tpl


def campaign_csv(count: int = 40) -> tuple[bytes, dict[str, Any]]:
    """A file with every fifth language Hindi, 2 bad numbers, 2 duplicates and a bad value."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Name", "Order", "Phone", "Language"])
    good = numbers(count)
    for i, number in enumerate(good):
        writer.writerow([f"N{i}", str(1000 + i), number, "hi" if i % 5 == 0 else "en"])
    writer.writerow(["Bad", "1", "12345", "en"])
    writer.writerow(["Bad", "2", "not a number", "en"])
    writer.writerow(["Dup", "3", good[0], "en"])
    writer.writerow(["Dup", "4", good[1].replace("+91", "0"), "en"])  # same number, national
    writer.writerow(["Word", "abc", numbers(1, 500)[0], "en"])  # {#numeric#} gets letters
    expected = {"rows": count + 5, "valid": count, "invalid": 3, "duplicates": 2, "good": good}
    return out.getvalue().encode(), expected


def sender(*codenames: str) -> Client:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_exotel_sms", codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client


def start(client: Client, template: SmsTemplate | None, data: bytes, **extra: str) -> str:
    """POST the compose form with a CSV; returns the preview URL it redirects to."""
    fields: dict[str, Any] = {"name": "Shipping news", **extra}
    if template is not None:
        fields["template"] = str(template.pk)
    fields["file"] = SimpleUploadedFile("customers.csv", data, content_type="text/csv")
    response = client.post(reverse(COMPOSE), fields)
    assert response.status_code == 302, response.context["form"].errors
    return str(response["Location"])


def test_every_step_is_403_without_the_campaign_permission(shipped: SmsTemplate) -> None:
    allowed = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(5)
    preview = start(allowed, shipped, data)
    token = preview.rstrip("/").rsplit("/", 1)[1]
    urls = {
        "compose": reverse(COMPOSE),
        "preview": preview,
        "invalid": reverse("admin:django_exotel_sms_campaign_invalid_csv", args=[token]),
        "confirm": reverse("admin:django_exotel_sms_campaign_confirm", args=[token]),
    }
    for codenames in (("add_smsmessage", "view_campaign"), ("send_campaign",)):
        User.objects.filter(username="ops").delete()
        other = sender(*codenames)
        # The other user gets the same session data, so only the permission stops them.
        session = other.session
        key = "django_exotel_sms_campaigns"
        session[key] = allowed.session[key]
        session.save()
        for name, url in urls.items():
            assert other.get(url).status_code == 403, (codenames, name)
            assert other.post(url, {}).status_code == 403, (codenames, name)
    assert not Campaign.objects.exists() and not SmsBatch.objects.exists()


def test_preview_counts_equal_a_direct_count_and_saves_nothing(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, expected = campaign_csv()
    response = client.get(start(client, shipped, data))
    assert response.status_code == 200
    summary: campaigns.Summary = response.context["summary"]
    # A direct count, independent of the preview's code.
    reader = list(csv.DictReader(io.StringIO(data.decode())))
    distinct: set[str] = set()
    valid = 0
    for row in reader:
        try:
            number = phone.normalize(row["Phone"])
        except phone.InvalidNumber:
            continue
        if row["Order"].isdigit() and number not in distinct:
            valid += 1
        distinct.add(number)
    assert (summary.rows, summary.valid) == (len(reader), valid) == (expected["rows"], 40)
    assert (summary.invalid, summary.duplicates) == (expected["invalid"], expected["duplicates"])
    languages = {row["language"]: row for row in response.context["languages"]}
    assert (languages["hi"]["count"], languages["hi"]["dlt_template_id"]) == (8, HI_ID)
    assert (languages["en"]["count"], languages["en"]["dlt_template_id"]) == (32, EN_ID)
    assert dict(summary.encodings) == {"unicode": 8, "plain": 32}
    assert summary.units == sum(n * parts for parts, n in summary.segments.items())
    first = summary.first[0]
    assert first["body"] == "प्रिय N0, आपका ऑर्डर 1000 भेज दिया गया है। - ACME"
    html = response.content.decode()
    assert 'class="exotel-count-valid">40<' in html
    assert not SmsMessage.objects.exists() and not Campaign.objects.exists()


def test_invalid_rows_download(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(5)
    token = start(client, shipped, data).rstrip("/").rsplit("/", 1)[1]
    response = client.get(reverse("admin:django_exotel_sms_campaign_invalid_csv", args=[token]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["line", "number", "reason"]
    assert [r[1] for r in rows[1:]] == [
        "12345",
        "not a number",
        numbers(5)[0],
        "09870000001",
        numbers(1, 500)[0],
    ]
    assert rows[1][2].startswith("to: ") and rows[3][2] == "duplicate"
    assert rows[5][2].startswith("context: ")


def test_confirm_sends_one_batch_through_send_bulk_and_a_replay_creates_nothing(
    shipped: SmsTemplate,
) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, expected = campaign_csv()
    preview = start(client, shipped, data)
    token = preview.rstrip("/").rsplit("/", 1)[1]
    confirm = reverse("admin:django_exotel_sms_campaign_confirm", args=[token])
    assert client.get(confirm).status_code == 405  # POST only
    assert client.get(preview).status_code == 200
    response = client.post(confirm)
    batch = SmsBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:django_exotel_sms_smsbatch_change", args=[batch.pk]
    )
    rows = {m.to: m for m in SmsMessage.objects.filter(batch=batch)}
    assert sorted(rows) == sorted(expected["good"]) and batch.total == 40
    hindi = rows[expected["good"][5]]
    assert (hindi.body, hindi.dlt_template_id, hindi.encoding) == (
        "प्रिय N5, आपका ऑर्डर 1005 भेज दिया गया है। - ACME",
        HI_ID,
        "unicode",
    )
    campaign = Campaign.objects.get()
    assert (campaign.batch, campaign.file_name, campaign.created_by.username) == (
        batch,
        "customers.csv",
        "ops",
    )
    assert (campaign.rows_total, campaign.rows_valid, campaign.rows_invalid) == (45, 40, 3)
    assert campaign.rows_duplicate == 2
    # The rest of the audit: what was sent, when, and its estimated cost (1 part each).
    assert (campaign.name, campaign.template, campaign.created_at is not None) == (
        "Shipping news",
        shipped,
        True,
    )
    assert campaign.estimated_units == 40 == sum(m.segments for m in rows.values())

    replay = client.post(confirm)  # back button / double click / replayed POST
    assert replay.status_code == 302 and replay["Location"] == response["Location"]
    assert SmsBatch.objects.count() == 1 and Campaign.objects.count() == 1
    assert SmsMessage.objects.count() == 40


def test_confirm_needs_the_csrf_token(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(3)
    preview = start(client, shipped, data)
    client.get(preview)
    token = preview.rstrip("/").rsplit("/", 1)[1]
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies
    response = strict.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    assert response.status_code == 403
    assert not SmsBatch.objects.exists()


def test_the_mapping_can_be_changed(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(5)
    preview = start(client, shipped, data)
    response = client.get(preview)
    initial = response.context["form"].initial
    # Auto-mapped by header: Phone is the number, Language the language, then Name, Order.
    assert initial == {"number_column": "2", "language_column": 3, "var1": "0", "var2": "1"}
    # Swap the variables: the order number goes into {#var#} and the name into {#numeric#}.
    client.post(preview, {"number_column": "2", "language_column": "", "var1": "1", "var2": "0"})
    summary = client.get(preview).context["summary"]
    assert summary.valid == 0 and summary.invalid == 10  # names are not numeric; dups too


def test_pasted_numbers_with_free_text() -> None:
    client = sender("send_campaign", "add_smsmessage")
    good = numbers(3, 900)
    response = client.post(
        reverse(COMPOSE),
        {"body": "Our store opens at 10 today.", "numbers": "\n".join([*good, "123", good[0]])},
    )
    assert response.status_code == 302
    summary = client.get(response["Location"]).context["summary"]
    assert (summary.valid, summary.invalid, summary.duplicates) == (3, 1, 1)
    token = response["Location"].rstrip("/").rsplit("/", 1)[1]
    client.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    assert sorted(SmsMessage.objects.values_list("to", flat=True)) == sorted(good)
    assert Campaign.objects.get().file_name == ""


def test_campaigns_are_listed_for_audit(admin_client: Client, shipped: SmsTemplate) -> None:
    data, _ = campaign_csv(3)
    preview = start(admin_client, shipped, data)
    admin_client.get(preview)
    admin_client.post(preview.rstrip("/") + "/confirm/")
    page = admin_client.get(reverse("admin:django_exotel_sms_campaign_changelist"))
    html = page.content.decode()
    assert "customers.csv" in html and "Send a campaign" in html
    campaign = Campaign.objects.get()
    detail = admin_client.get(
        reverse("admin:django_exotel_sms_campaign_change", args=[campaign.pk])
    ).content.decode()
    assert "admin" in detail and "customers.csv" in detail


def test_auto_map() -> None:
    assert campaigns.auto_map(["mobile", "var2", "x", "lang"], 2) == (0, 3, [2, 1])
    assert campaigns.auto_map(["a", "b"], 0) == (0, None, [])


def test_a_concurrent_confirm_that_lost_the_race_creates_nothing(
    shipped: SmsTemplate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two confirms of one draft at once: the unique token lets only the first write."""
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(3)
    preview = start(client, shipped, data)
    client.get(preview)
    token = preview.rstrip("/").rsplit("/", 1)[1]
    from django_exotel_sms.admin.campaign_admin import CampaignAdmin

    real = CampaignAdmin._template
    won: list[Campaign] = []

    def other_request_wins(draft: campaigns.Draft) -> Any:
        if not won:  # the other request commits its Campaign after this one looked
            won.append(Campaign.objects.create(confirm_token=token, name="first"))
        return real(draft)

    monkeypatch.setattr(CampaignAdmin, "_template", staticmethod(other_request_wins))
    response = client.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    assert response.status_code == 302
    assert list(Campaign.objects.all()) == won
    assert not SmsBatch.objects.exists() and not SmsMessage.objects.exists()


def test_recipients_that_changed_since_the_preview_send_nothing(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(5)
    preview = start(client, shipped, data)
    client.get(preview)  # shows 5 valid recipients
    token = preview.rstrip("/").rsplit("/", 1)[1]
    path = client.session["django_exotel_sms_campaigns"][token]["path"]
    smaller, _ = campaign_csv(3)  # every row valid, but 3 where the preview said 5
    with campaigns.storage().open(path, "wb") as stored:
        stored.write(smaller)
    response = client.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    assert response.status_code == 302 and response["Location"] == preview
    assert not SmsBatch.objects.exists() and not Campaign.objects.exists()
    assert not SmsMessage.objects.exists()


def test_rows_invalid_at_confirm_send_nothing(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    data, _ = campaign_csv(5)
    preview = start(client, shipped, data)
    client.get(preview)
    token = preview.rstrip("/").rsplit("/", 1)[1]
    # The template now wants three values: every row is invalid at confirm.
    SmsTemplate.objects.filter(pk=shipped.pk).update(body="Hi {#var#}, {#var#}, {#var#}.")
    response = client.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    assert response.status_code == 302 and response["Location"] == preview
    assert not SmsBatch.objects.exists() and not Campaign.objects.exists()


def test_senders_see_the_campaign_list_and_its_send_link(shipped: SmsTemplate) -> None:
    client = sender("send_campaign", "add_smsmessage")
    page = client.get(reverse("admin:django_exotel_sms_campaign_changelist"))
    assert page.status_code == 200 and "Send a campaign" in page.content.decode()
    viewer = Client()
    viewer.force_login(User.objects.create_user("viewer", is_staff=True))
    viewer_user = User.objects.get(username="viewer")
    viewer_user.user_permissions.set(Permission.objects.filter(codename="view_campaign"))
    page = viewer.get(reverse("admin:django_exotel_sms_campaign_changelist"))
    assert page.status_code == 200 and "Send a campaign" not in page.content.decode()


def test_preview_counts_suppressed_recipients_and_shows_a_window_deferral(
    shipped: SmsTemplate, settings: Any
) -> None:
    from datetime import datetime, timedelta
    from datetime import timezone as dt_timezone
    from unittest import mock

    from django_exotel_sms import suppression

    data, expected = campaign_csv(10)
    for number in expected["good"][:3]:
        suppression.suppress(number, reason="opt_out")
    suppression.suppress(expected["good"][3], reason="dnd", scope="promotional")
    # 22:00 in India: the default promotional window (10:00-21:00 IST) is closed.
    night = datetime(2026, 12, 3, 16, 30, tzinfo=dt_timezone.utc)
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "SENDING_WINDOWS": [
            {
                "sms_types": ["promotional"],
                "regions": ["IN"],
                "start": "10:00",
                "end": "21:00",
                "timezone": "Asia/Kolkata",
            }
        ],
    }
    client = sender("send_campaign", "add_smsmessage")
    with mock.patch("django.utils.timezone.now", return_value=night):
        transactional = client.get(start(client, shipped, data)).context["summary"]
        promotional = client.get(
            start(client, shipped, data, sms_type="promotional", sender="600123")
        ).context["summary"]
    # The opt-outs are refused whatever the type; the DND entry only for promotional SMS.
    assert (transactional.suppressed, transactional.schedule) == (3, None)
    opening = datetime(2026, 12, 4, 4, 30, tzinfo=dt_timezone.utc)  # 10:00 IST next day
    assert promotional.suppressed == 4
    assert promotional.schedule == opening
    assert opening - night == timedelta(hours=12)


def test_a_campaign_scheduled_in_the_compose_form_is_saved_for_then(shipped: SmsTemplate) -> None:
    from datetime import timedelta

    from django.utils import timezone

    client = sender("send_campaign", "add_smsmessage")
    data, expected = campaign_csv(5)
    when = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    local = timezone.localtime(when).strftime("%Y-%m-%d %H:%M")
    preview = start(client, shipped, data, send_at=local)
    assert client.get(preview).context["summary"].schedule == when
    token = preview.rstrip("/").rsplit("/", 1)[1]
    client.post(reverse("admin:django_exotel_sms_campaign_confirm", args=[token]))
    rows = SmsMessage.objects.filter(batch=SmsBatch.objects.get())
    assert rows.count() == 5
    assert set(rows.values_list("send_at", "status_reason")) == {(when, "scheduled")}
