"""The admin pages and actions, through the Django test client."""

from __future__ import annotations

import warnings
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_exotel_sms import reconcile, sending, status, tasks
from django_exotel_sms.admin.pagination import CappedCountPaginator
from django_exotel_sms.admin.preview import preview
from django_exotel_sms.backends import locmem
from django_exotel_sms.exceptions import ExotelError
from django_exotel_sms.models import (
    ClickEvent,
    DltEntity,
    SenderId,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    StatusEvent,
)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_exotel_sms_smsmessage_changelist")
NUMBER = "+919876543210"


def message_url(pk: int) -> str:
    return reverse("admin:django_exotel_sms_smsmessage_change", args=[pk])


def template_url(name: str, pk: int) -> str:
    return reverse(f"admin:django_exotel_sms_smstemplate_{name}", args=[pk])


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def entity() -> DltEntity:
    return DltEntity.objects.create(entity_id="1101000000000000002", name="Acme Pvt Ltd")


@pytest.fixture
def sender(entity: DltEntity) -> SenderId:
    return SenderId.objects.create(header="ACMEIN", entity=entity, description="Acme alerts")


@pytest.fixture
def otp_template(sender: SenderId, entity: DltEntity) -> SmsTemplate:
    return SmsTemplate.objects.create(
        name="otp",
        body="Your OTP is {#numeric#}. Valid for {#numeric#} minutes. - Acme",
        dlt_template_id="1107000000000000001",
        sender=sender,
        entity=entity,
    )


@pytest.fixture
def hello_template(sender: SenderId) -> SmsTemplate:
    return SmsTemplate.objects.create(
        name="hello", body="Hello {#var#}, welcome!", dlt_template_id="1107000000000000002"
    )


@pytest.fixture
def deliver_inline():
    """Celery's place taken by the in-process sender: the admin still enqueues as in production."""
    enqueued: list[int] = []

    def apply_async(args, **kwargs):
        enqueued.append(args[0])
        sending.deliver_message(args[0])

    with mock.patch.object(tasks.send_message, "apply_async", side_effect=apply_async):
        yield enqueued


def make_message(**fields) -> SmsMessage:
    values = {"to": NUMBER, "sender": "ACMEIN", "body": "Hello there", "status": status.PENDING}
    values.update(fields)
    return SmsMessage.objects.create(**values)


def staff_client(*codenames: str) -> Client:
    user = User.objects.create_user("ops", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_exotel_sms", codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client


def result_pks(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def flash(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- message changelist ---------------------------------------------------------------------


def test_changelist_renders_columns(admin_client, otp_template):
    batch = SmsBatch.objects.create(kind="static", name="Diwali offers", total=1)
    make_message(
        status=status.SENT,
        template=otp_template,
        batch=batch,
        detailed_status_code=20005,
        detailed_status="DELIVERED_TO_HANDSET",
        body="Your OTP is 1234. Valid for 10 minutes. - Acme " + "x" * 60,
        sent_at=timezone.now(),
    )
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    assert "exotel-status-sent" in html
    # The code, and its name under it, free to wrap after underscores.
    assert '<span class="exotel-detail-code">20005</span>' in html
    assert "DELIVERED_<wbr>TO_<wbr>HANDSET" in html
    assert f'href="?batch__id__exact={batch.pk}"' in html
    assert "Diwali offers" in html
    assert "Your OTP is 1234. Valid for 10 minutes. - Acme " + "x" * 32 + "…" in html
    assert otp_template.name in html  # under the text, with the batch
    assert response.context["cl"].paginator.count == 1
    # The add button is gone: messages are only created through the manager.
    assert CHANGELIST + "add/" not in html


def test_add_page_is_forbidden_and_change_page_is_read_only(admin_client):
    message = make_message()
    assert admin_client.get(CHANGELIST + "add/").status_code == 403
    response = admin_client.post(message_url(message.pk), {"to": "+919999999999"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.to == NUMBER


def test_change_page_shows_history_and_clicks(admin_client):
    message = make_message(status=status.SENT, sid="abc123", detailed_status_code=23999)
    StatusEvent.objects.create(message=message, status="queued", source="api", note="first")
    StatusEvent.objects.create(
        message=message,
        status="sent",
        detailed_status_code=20005,
        detailed_status="DELIVERED_TO_HANDSET",
        source="callback",
        note="second",
    )
    ClickEvent.objects.create(
        message=message, sms_sid="abc123", short_url="https://exo.tl/x", city="Pune"
    )
    response = admin_client.get(message_url(message.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("first") < html.index("second")  # history in time order
    assert "Status callback" in html and "API response" in html
    assert "https://exo.tl/x" in html and "Pune" in html
    assert "Unknown code 23999 (kept as reported)" in html
    assert 'name="_save"' not in html  # nothing to save


def test_filters(admin_client, otp_template, hello_template):
    now = timezone.now()
    batch = SmsBatch.objects.create(kind="static", total=1)
    sent = make_message(status=status.SENT, detailed_status_code=20005, template=otp_template)
    failed = make_message(status=status.FAILED, detailed_status_code=23999, batch=batch)
    pending = make_message(template=hello_template)
    old = make_message(status=status.SENT, detailed_status_code=20006)
    SmsMessage.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=20))

    cases = {
        "status__exact=sent": {sent.pk, old.pk},
        "status__exact=failed": {failed.pk},
        "detailed_status_code=20005": {sent.pk},
        "detailed_status_code=unknown": {failed.pk},
        "detailed_status_code=none": {pending.pk},
        f"template__id__exact={otp_template.pk}": {sent.pk},
        f"batch__id__exact={batch.pk}": {failed.pk},
        "created=today": {sent.pk, failed.pk, pending.pk},
        "created=7d": {sent.pk, failed.pk, pending.pk},
        "created=30d": {sent.pk, failed.pk, pending.pk, old.pk},
        "status__exact=sent&created=7d": {sent.pk},
    }
    for query, expected in cases.items():
        response = admin_client.get(f"{CHANGELIST}?{query}")
        assert response.status_code == 200, query
        assert result_pks(response) == expected, query


def test_filter_sidebar_lists_templates_and_codes_but_not_batches(admin_client, otp_template):
    batch = SmsBatch.objects.create(kind="static", name="Sidebar batch", total=0)
    html = admin_client.get(CHANGELIST).content.decode()
    assert "23185 DLT_TEMPLATE_DOES_NOT_MATCH" in html
    assert "Unknown code" in html
    assert f"template__id__exact={otp_template.pk}" in html
    assert "Sidebar batch" not in html
    html = admin_client.get(f"{CHANGELIST}?batch__id__exact={batch.pk}").content.decode()
    assert "Sidebar batch" in html  # the chosen batch is named once it is chosen


@pytest.mark.parametrize(
    "query", ["batch__id__exact=abc", "detailed_status_code=abc", "created=yesterday"]
)
def test_bad_filter_values_are_refused(admin_client, query):
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize(
    "term", [NUMBER, "09876543210", "9876543210", "+91 98765 43210", "SMSSID123", "order-77"]
)
def test_search_by_number_sid_and_custom_field(admin_client, term):
    target = make_message(sid="SMSSID123", custom_field="order-77")
    make_message(to="+919812345678", sid="OTHER", custom_field="order-78")
    response = admin_client.get(CHANGELIST, {"q": term})
    assert response.status_code == 200
    assert result_pks(response) == {target.pk}


def test_search_is_exact_not_partial(admin_client):
    make_message(custom_field="order-77")
    response = admin_client.get(CHANGELIST, {"q": "order"})
    assert result_pks(response) == set()


# -- actions --------------------------------------------------------------------------------


def action_post(client: Client, action: str, pks, confirm: bool, query: str = ""):
    data = {"action": action, "_selected_action": [str(pk) for pk in pks]}
    if confirm:
        data["post"] = "yes"
    else:
        data["index"] = "0"
    return client.post(CHANGELIST + query, data)


def test_resend_through_confirmation_page(
    admin_client, otp_template, deliver_inline, django_capture_on_commit_callbacks
):
    original = make_message(
        body="Your OTP is 1234. Valid for 10 minutes. - Acme",
        template=otp_template,
        dlt_template_id=otp_template.dlt_template_id,
        dlt_entity_id="1101000000000000002",
        sms_type="transactional",
        custom_field="order-9",
        priority="high",
        status=status.FAILED,
    )
    # GET never acts.
    admin_client.get(CHANGELIST, {"action": "resend_messages", "_selected_action": original.pk})
    # First POST: a confirmation page, nothing sent.
    response = action_post(admin_client, "resend_messages", [original.pk], confirm=False)
    assert response.status_code == 200
    assert response.templates[0].name.endswith("action_confirmation.html")
    html = response.content.decode()
    assert 'name="post" value="yes"' in html
    assert 'name="action" value="resend_messages"' in html
    assert f'name="_selected_action" value="{original.pk}"' in html
    assert SmsMessage.objects.count() == 1
    assert locmem.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        response = action_post(admin_client, "resend_messages", [original.pk], confirm=True)
    assert response.status_code == 302
    assert SmsMessage.objects.count() == 2
    copy = SmsMessage.objects.exclude(pk=original.pk).get()
    assert (copy.to, copy.body, copy.sender) == (original.to, original.body, "ACMEIN")
    assert copy.template_id == otp_template.pk
    assert copy.dlt_template_id == otp_template.dlt_template_id
    assert (copy.custom_field, copy.priority, copy.sms_type) == ("order-9", "high", "transactional")
    assert copy.status == status.QUEUED
    assert deliver_inline == [copy.pk]
    assert [(e.to, e.body) for e in locmem.outbox] == [(original.to, original.body)]
    original.refresh_from_db()
    assert original.status == status.FAILED  # the original is kept as it was
    messages = flash(admin_client.get(response["Location"]))
    assert any("Resent 1 message" in m for m in messages)


def test_resend_reports_invalid_messages_without_crashing(
    admin_client, hello_template, deliver_inline, django_capture_on_commit_callbacks
):
    good = make_message(body="Plain hello")
    hello_template.is_active = False
    hello_template.save()
    bad = make_message(body="Hello Ravi, welcome!", template=hello_template)
    with django_capture_on_commit_callbacks(execute=True):
        response = action_post(admin_client, "resend_messages", [good.pk, bad.pk], confirm=True)
    assert response.status_code == 302
    assert SmsMessage.objects.count() == 3
    assert len(locmem.outbox) == 1
    messages = flash(admin_client.get(response["Location"]))
    assert any("Resent 1 message" in m for m in messages)
    assert any(
        "1 message could not be resent" in m and f"#{bad.pk}" in m and "inactive" in m
        for m in messages
    )


def test_refresh_status_through_confirmation_page(
    admin_client, deliver_inline, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        message = SmsMessage.objects.send(NUMBER, "Your parcel is out", sender="ACMEIN")
    message.refresh_from_db()
    assert message.status == status.QUEUED and message.sid
    unsent = make_message()

    response = action_post(admin_client, "refresh_status", [message.pk], confirm=False)
    assert response.status_code == 200
    assert b"Refresh status from Exotel" in response.content
    message.refresh_from_db()
    assert message.status == status.QUEUED

    response = action_post(admin_client, "refresh_status", [message.pk, unsent.pk], confirm=True)
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == status.SENT
    assert message.detailed_status_code == 20005
    assert message.events.filter(source=StatusEvent.SOURCE_RECONCILE, status="sent").exists()
    messages = flash(admin_client.get(response["Location"]))
    assert any("1 updated, 0 unchanged" in m and "1 not sent to Exotel yet" in m for m in messages)


def test_refresh_reports_exotel_errors(admin_client):
    message = make_message(status=status.QUEUED, sid="SID1")
    with mock.patch.object(reconcile, "refresh_message", side_effect=ExotelError("Exotel is down")):
        response = action_post(admin_client, "refresh_status", [message.pk], confirm=True)
    assert response.status_code == 302
    messages = list(admin_client.get(response["Location"]).context["messages"])
    errors = [str(m) for m in messages if m.level_tag == "error"]
    assert errors and "Exotel is down" in errors[0] and f"#{message.pk}" in errors[0]


def test_refresh_of_many_is_handed_to_workers(admin_client):
    pks = [make_message(status=status.QUEUED, sid=f"SID{i}").pk for i in range(21)]
    with (
        mock.patch.object(tasks.refresh_message, "apply_async") as enqueue,
        mock.patch.object(reconcile, "refresh_message") as inline,
    ):
        response = action_post(admin_client, "refresh_status", pks, confirm=True)
    assert response.status_code == 302
    assert inline.call_count == 0
    assert sorted(call.args[0][0] for call in enqueue.call_args_list) == sorted(pks)
    messages = flash(admin_client.get(response["Location"]))
    assert any("Queued 21 status refreshes" in m for m in messages)


def test_action_over_the_selection_limit_is_refused(admin_client, monkeypatch):
    from django_exotel_sms.admin import actions

    monkeypatch.setattr(actions, "MAX_SELECTED", 2)
    pks = [make_message().pk for _ in range(3)]
    response = action_post(admin_client, "resend_messages", pks, confirm=True)
    assert response.status_code == 302
    assert SmsMessage.objects.count() == 3
    assert any("at most 2 messages" in m for m in flash(admin_client.get(response["Location"])))


def test_select_across_uses_the_filtered_list(admin_client):
    sent = make_message(status=status.SENT)
    other_sent = make_message(status=status.SENT)
    make_message(status=status.FAILED)
    response = admin_client.post(
        CHANGELIST + "?status__exact=sent",
        # The browser keeps the page's boxes ticked when "select all" is chosen.
        {
            "action": "refresh_status",
            "select_across": "1",
            "index": "0",
            "_selected_action": [sent.pk],
        },
    )
    assert response.status_code == 200
    assert [m.pk for m in response.context["chosen"]] == [other_sent.pk, sent.pk]


def test_delete_selected_is_not_offered(admin_client):
    make_message()
    choices = dict(admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert set(choices) == {"", "resend_messages", "refresh_status", "cancel_messages"}


def test_admin_pages_raise_no_deprecation_warnings(admin_client):
    # Django 6.1 warned on every changelist that get_actions() lacked action_location.
    message = make_message()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert admin_client.get(CHANGELIST).status_code == 200
        change = reverse("admin:django_exotel_sms_smsmessage_change", args=[message.pk])
        assert admin_client.get(change).status_code == 200
    deprecations = [
        w for w in caught if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning))
    ]
    assert [str(w.message) for w in deprecations] == []


# -- permissions ----------------------------------------------------------------------------


def action_choices(client: Client) -> set[str]:
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:  # no action allowed at all
        return set()
    return {value for value, _ in form.fields["action"].choices} - {""}


def test_view_only_staff_gets_no_actions_and_cannot_run_them(deliver_inline):
    client = staff_client("view_smsmessage")
    message = make_message(status=status.QUEUED, sid="SIDX")
    assert action_choices(client) == set()
    action_post(client, "resend_messages", [message.pk], confirm=True)
    assert SmsMessage.objects.count() == 1
    assert locmem.outbox == []
    response = action_post(client, "refresh_status", [message.pk], confirm=False)
    # No action is available, so the POST just shows the list again: no confirmation page.
    assert response.status_code == 200
    assert "cl" in response.context and "chosen" not in response.context
    names = [t.name for t in response.templates]
    assert "admin/change_list.html" in names
    assert not any("action_confirmation" in name for name in names)
    assert client.get(message_url(message.pk)).status_code == 200


def test_change_permission_allows_refresh_and_cancel_only():
    client = staff_client("change_smsmessage")
    assert action_choices(client) == {"refresh_status", "cancel_messages"}


def test_add_permission_allows_resend():
    client = staff_client("view_smsmessage", "add_smsmessage")
    assert action_choices(client) == {"resend_messages"}


def test_staff_without_message_permissions_is_denied():
    client = staff_client()
    assert client.get(CHANGELIST).status_code == 403


# -- templates ------------------------------------------------------------------------------


def template_form(**overrides) -> dict[str, str]:
    data = {
        "name": "welcome",
        "body": "Hi {#var#}, your code is {#numeric#}.",
        "dlt_template_id": "1107000000000000003",
        "sms_type": "transactional",
        "sender": "",
        "entity": "",
        "is_active": "on",
        # The language variants inline's management form: no variants.
        "variants-TOTAL_FORMS": "0",
        "variants-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_template_pages(admin_client, otp_template):
    changelist = reverse("admin:django_exotel_sms_smstemplate_changelist")
    response = admin_client.get(changelist)
    assert response.status_code == 200
    html = response.content.decode()
    assert "1107000000000000001" in html and "ACMEIN" in html
    assert template_url("preview", otp_template.pk) in html
    assert template_url("test_send", otp_template.pk) in html
    assert admin_client.get(changelist + "add/").status_code == 200
    response = admin_client.get(template_url("change", otp_template.pk))
    html = response.content.decode()
    assert template_url("preview", otp_template.pk) in html
    assert template_url("test_send", otp_template.pk) in html
    assert "1: {#numeric#}, 2: {#numeric#}" in html


def test_template_form_rejects_unknown_placeholder(admin_client):
    add = reverse("admin:django_exotel_sms_smstemplate_add")
    response = admin_client.post(add, template_form(body="Hello {#foo#}"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Unknown placeholder '{#foo#}'" in " ".join(errors["body"])
    assert not SmsTemplate.objects.exists()

    response = admin_client.post(add, template_form())
    assert response.status_code == 302
    assert SmsTemplate.objects.get().body == "Hi {#var#}, your code is {#numeric#}."


def test_template_form_rejects_non_digit_dlt_id(admin_client):
    add = reverse("admin:django_exotel_sms_smstemplate_add")
    response = admin_client.post(add, template_form(dlt_template_id="abc"))
    assert "digits only" in " ".join(response.context["adminform"].form.errors["dlt_template_id"])


def test_preview_get_shows_one_labelled_input_per_placeholder(admin_client, otp_template):
    response = admin_client.get(template_url("preview", otp_template.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="var1"' in html and 'name="var2"' in html and 'name="var3"' not in html
    assert "Variable 1 {#numeric#}" in html
    assert "exotel-preview-result" not in html


def test_preview_gsm_text(admin_client, otp_template):
    response = admin_client.post(
        template_url("preview", otp_template.pk), {"var1": "482913", "var2": "10"}
    )
    result = response.context["result"]
    assert result.text == "Your OTP is 482913. Valid for 10 minutes. - Acme"
    html = response.content.decode()
    assert "Your OTP is 482913. Valid for 10 minutes. - Acme" in html
    assert '<td class="exotel-encoding">GSM-7</td>' in html
    assert '<td class="exotel-segments">1 (' in html
    assert f'<td class="exotel-length">{len(result.text)} septets' in html
    assert "Matches the template" in html


def test_preview_unicode_text_and_segments(admin_client, hello_template):
    name = "राहुल"
    response = admin_client.post(template_url("preview", hello_template.pk), {"var1": name})
    html = response.content.decode()
    assert f"Hello {name}, welcome!" in html
    assert '<td class="exotel-encoding">UCS-2 (Unicode)</td>' in html
    assert "UTF-16 units" in html
    assert "Matches the template" in html

    long_template = SmsTemplate.objects.create(name="long", body="नमस्ते " * 12 + "{#var#}")
    response = admin_client.post(template_url("preview", long_template.pk), {"var1": "x"})
    assert '<td class="exotel-segments">2 (67 per segment' in response.content.decode()


def test_preview_shows_why_values_do_not_match(admin_client, otp_template):
    response = admin_client.post(
        template_url("preview", otp_template.pk), {"var1": "12ab", "var2": "10"}
    )
    html = response.content.decode()
    assert "Your OTP is 12ab. Valid for 10 minutes. - Acme" in html
    assert "Does not match" in html
    assert "variable 1 ({#numeric#}) &#x27;12ab&#x27; is not numeric" in html


def test_preview_helper_for_a_broken_template():
    result = preview("Hi {#foo#}", [])
    assert result.text == "" and "Unknown placeholder" in result.error
    assert result.segments is None and result.match is None


def test_test_send_creates_a_message(
    admin_client, otp_template, deliver_inline, django_capture_on_commit_callbacks
):
    url = template_url("test_send", otp_template.pk)
    assert admin_client.get(url).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"to": "09876543210", "var1": "4321", "var2": "5"})
    message = SmsMessage.objects.get()
    assert response.status_code == 302
    assert response["Location"] == message_url(message.pk)
    assert message.to == NUMBER
    assert message.body == "Your OTP is 4321. Valid for 5 minutes. - Acme"
    assert message.template_id == otp_template.pk and message.sender == "ACMEIN"
    assert deliver_inline == [message.pk]
    assert [(e.to, e.sender) for e in locmem.outbox] == [(NUMBER, "ACMEIN")]
    assert any(
        "Test SMS to +919876543210" in m for m in flash(admin_client.get(message_url(message.pk)))
    )


def test_test_send_shows_validation_errors(admin_client, otp_template):
    url = template_url("test_send", otp_template.pk)
    response = admin_client.post(url, {"to": "12345", "var1": "abc", "var2": "5"})
    assert response.status_code == 200
    form = response.context["form"]
    assert "'12345' is not" in " ".join(form.errors["to"])
    assert "is not numeric" in " ".join(form.non_field_errors())
    assert not SmsMessage.objects.exists()


def test_test_send_needs_add_permission_on_messages(otp_template):
    client = staff_client("view_smstemplate")
    assert client.get(template_url("preview", otp_template.pk)).status_code == 200
    response = client.post(
        template_url("test_send", otp_template.pk), {"to": NUMBER, "var1": "1", "var2": "2"}
    )
    assert response.status_code == 403
    assert not SmsMessage.objects.exists()


def test_template_tools_404_for_missing_template(admin_client):
    assert admin_client.get(template_url("preview", 999)).status_code == 404


# -- batches, DLT entities, sender IDs ------------------------------------------------------


def test_batch_pages_show_progress_and_link(admin_client, otp_template):
    batch = SmsBatch.objects.create(kind="static", name="Offers", total=4, template=otp_template)
    for state in (status.SENT, status.SENT, status.FAILED, status.QUEUED):
        make_message(status=state, batch=batch)
    changelist = reverse("admin:django_exotel_sms_smsbatch_changelist")
    response = admin_client.get(changelist)
    assert response.status_code == 200 and b"Offers" in response.content
    assert admin_client.get(changelist + "add/").status_code == 403

    response = admin_client.get(reverse("admin:django_exotel_sms_smsbatch_change", args=[batch.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "3 of 4 final (75.0%)" in html
    assert f'{CHANGELIST}?batch__id__exact={batch.pk}"' in html
    assert (
        f'<tr class="exotel-status-row-sent"><td>Sent (delivered)</td><td class="exotel-count">'
        f'<a href="{CHANGELIST}?batch__id__exact={batch.pk}&amp;status__exact=sent">2</a>'
    ) in html
    assert '<tr class="exotel-status-row-pending"><td>Pending' in html
    assert "width:50.0%;background:#198754" in html
    assert 'name="_save"' not in html


def test_dlt_entity_and_sender_pages(admin_client, sender, entity):
    for model in ("dltentity", "senderid"):
        changelist = reverse(f"admin:django_exotel_sms_{model}_changelist")
        response = admin_client.get(changelist, {"q": "acme"})
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 1
        assert admin_client.get(changelist + "add/").status_code == 200
    response = admin_client.post(
        reverse("admin:django_exotel_sms_senderid_add"),
        {"header": "OFFERS", "entity": str(entity.pk), "description": "", "is_active": "on"},
    )
    assert response.status_code == 302
    assert SenderId.objects.get(header="OFFERS").entity == entity
    response = admin_client.post(
        reverse("admin:django_exotel_sms_senderid_add"),
        {"header": "TOOLONGX", "entity": "", "description": "", "is_active": "on"},
    )
    assert "6 letters" in " ".join(response.context["adminform"].form.errors["header"])


def test_entity_autocomplete_for_senders_and_templates(admin_client, entity, sender):
    url = reverse("admin:autocomplete")
    for model, field, term, expected in (
        ("senderid", "entity", "acme", str(entity)),
        ("smstemplate", "sender", "ACME", "ACMEIN"),
    ):
        response = admin_client.get(
            url,
            {
                "app_label": "django_exotel_sms",
                "model_name": model,
                "field_name": field,
                "term": term,
            },
        )
        assert response.status_code == 200
        assert [r["text"] for r in response.json()["results"]] == [expected]


# -- the paginator --------------------------------------------------------------------------


def test_capped_paginator_counts_at_most_cap(monkeypatch):
    for _ in range(5):
        make_message()
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    paginator = CappedCountPaginator(SmsMessage.objects.all(), 2)
    assert paginator.count == 3 and paginator.capped
    assert paginator.num_pages == 2
    assert paginator.display_count == "more than 3"
    exact = CappedCountPaginator(SmsMessage.objects.filter(pk__lte=0), 2)
    assert exact.count == 0 and not exact.capped and exact.display_count == "0"
    assert CappedCountPaginator([1, 2, 3, 4], 2).count == 4


def test_capped_changelist_says_more_than(admin_client, monkeypatch):
    for _ in range(4):
        make_message()
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    html = admin_client.get(CHANGELIST, {"q": NUMBER}).content.decode()
    assert "more than 3 results" in html or "about " in html
    assert "only the first pages are listed" in html
