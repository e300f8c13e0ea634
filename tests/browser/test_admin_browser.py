"""The admin in a real browser: headless Chromium, the live server and the local Exotel.

One walk through what an operator does: log in, create a DLT entity, a sender and a template,
preview it, test-send it, watch the message reach its final state, resend and refresh it
from the message list, and follow a batch's progress. Every screen is saved under
artifacts/screenshots/.

Sending goes through the manager, which enqueues Celery tasks; here they run eagerly, in the
live server's thread, and the local Exotel's status callbacks come back to the live server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_exotel_sms import status
from django_exotel_sms.models import DltEntity, SenderId, SmsBatch, SmsMessage, SmsTemplate

from ..helpers import numbers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ENTITY_ID = "1101000000000000777"
TEMPLATE_ID = "1107000000000000123"
BODY = "Your OTP for {#var#} is {#numeric#}. It is valid for 10 minutes. - ACMESH"
TO = "+919876500001"


@pytest.fixture
def exotel(sandbox, live_server, settings) -> Iterator[Any]:
    """The local Exotel, calling back to the live server; Celery tasks run eagerly."""
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "CALLBACK_BASE_URL": f"{live_server.url}/exotel/"}
    # Callbacks come well after the send's own request has finished with the database.
    sandbox.configure(callback_delay=0.5)
    from celery import _state

    from tests.celery_app import app

    # The live server answers each request in a new thread, where shared tasks resolve to
    # Celery's default app (not this thread's current one): make the tests' app the default,
    # and every app eager, whichever an earlier test left behind.
    default = _state.default_app
    _state.set_default_app(app)
    eager = {each: each.conf.task_always_eager for each in [app, *_state._get_active_apps()]}
    for each in eager:
        each.conf.task_always_eager = True
    yield sandbox
    for each, before in eager.items():
        each.conf.task_always_eager = before
    _state.set_default_app(default)


def _admin(live_server, path: str = "") -> str:
    return f"{live_server.url}/admin/django_exotel_sms/{path}"


def _login(page, live_server, admin_user, screens) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    screens.shot("login")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert page.locator("#user-tools").is_visible()
    screens.shot("admin home")


def _pick(page, field: str, search: str) -> None:
    """Choose a value in an autocomplete (select2) field by typing part of it."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", search)
    page.click(f".select2-results__option:has-text('{search}')")
    assert search in page.inner_text(f"#select2-id_{field}-container")


def _save(page) -> None:
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")


def _reload_until(page, check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
        page.reload()


def _run_action(page, screens, action: str, shot: str) -> None:
    """From the message list: choose an action, confirm it on its own page."""
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.wait_for_selector("#exotel-chosen-messages")
    screens.shot(f"{shot} confirmation")
    page.click("input[type=submit][value^='Yes']")
    page.wait_for_selector(".messagelist li")


def test_operator_walkthrough(page, live_server, admin_user, exotel, screens):
    _login(page, live_server, admin_user, screens)

    # A DLT entity, then a sender ID belonging to it.
    page.goto(_admin(live_server, "dltentity/add/"))
    page.fill("#id_entity_id", ENTITY_ID)
    page.fill("#id_name", "Acme Shop")
    screens.shot("entity form")
    _save(page)
    assert DltEntity.objects.filter(entity_id=ENTITY_ID, name="Acme Shop").exists()

    page.goto(_admin(live_server, "senderid/add/"))
    page.fill("#id_header", "ACMESH")
    _pick(page, "entity", "Acme Shop")
    page.fill("#id_description", "OTPs and order updates")
    screens.shot("sender form")
    _save(page)
    sender = SenderId.objects.get(header="ACMESH")
    assert sender.entity is not None and sender.entity.entity_id == ENTITY_ID

    # A template using both; the form shows the placeholders once saved.
    page.goto(_admin(live_server, "smstemplate/add/"))
    page.fill("#id_name", "otp")
    page.fill("#id_body", BODY)
    page.fill("#id_dlt_template_id", TEMPLATE_ID)
    page.select_option("#id_sms_type", "transactional")
    _pick(page, "sender", "ACMESH")
    _pick(page, "entity", "Acme Shop")
    screens.shot("template form")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    template = SmsTemplate.objects.get(name="otp")
    assert (template.sender_id, template.entity_id) == (sender.pk, sender.entity_id)
    assert "{#numeric#}" in page.inner_text(".field-placeholder_summary")
    screens.shot("template saved")

    # Preview: the rendered text, its encoding and its segments.
    page.click("a.exotel-preview-link")
    page.fill("#id_var1", "login")
    page.fill("#id_var2", "482913")
    page.click("#exotel-preview-form input[type=submit]")
    result = page.locator("#exotel-preview-result")
    rendered = "Your OTP for login is 482913. It is valid for 10 minutes. - ACMESH"
    assert result.locator(".exotel-rendered").inner_text() == rendered
    assert result.locator(".exotel-encoding").inner_text() == "GSM-7"
    assert result.locator(".exotel-segments").inner_text().startswith("1 (160 per segment")
    assert "Matches the template" in result.locator(".exotel-match").inner_text()
    screens.shot("preview gsm7")

    # A Devanagari value: UCS-2, 67 characters a segment once there are two.
    page.fill("#id_var1", "लॉगिन खाता")
    page.click("#exotel-preview-form input[type=submit]")
    assert result.locator(".exotel-encoding").inner_text() == "UCS-2 (Unicode)"
    assert result.locator(".exotel-segments").inner_text().startswith("2 (67 per segment")
    screens.shot("preview unicode")

    # Test send to the local Exotel; the message page shows it, then its final state.
    page.goto(_admin(live_server, f"smstemplate/{template.pk}/test-send/"))
    page.fill("#id_to", TO)
    page.fill("#id_var1", "login")
    page.fill("#id_var2", "482913")
    screens.shot("test send form")
    page.click("#exotel-test-send-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    message = SmsMessage.objects.get(to=TO)
    assert page.url.endswith(f"/smsmessage/{message.pk}/change/")
    screens.shot("test send queued")
    assert _reload_until(page, lambda: page.locator(".exotel-status-sent").count() > 0), (
        SmsMessage.objects.get(pk=message.pk).status
    )
    message.refresh_from_db()
    assert (message.status, message.body, message.sender) == (status.SENT, rendered, "ACMESH")
    assert (message.dlt_template_id, message.dlt_entity_id) == (TEMPLATE_ID, ENTITY_ID)
    assert "callback" in page.inner_text("#events-group")
    screens.shot("message sent")
    assert list(exotel.recipient_counts().values()) == [1]

    # Resend from the message list (a new message; the original stays), with confirmation.
    page.goto(_admin(live_server, "smsmessage/"))
    page.check(f"input.action-select[value='{message.pk}']")
    screens.shot("message list")
    _run_action(page, screens, "resend_messages", "resend")
    assert "Resent 1 message" in page.inner_text(".messagelist")
    assert SmsMessage.objects.filter(to=TO).count() == 2
    copy = SmsMessage.objects.filter(to=TO).exclude(pk=message.pk).get()
    assert _reload_until(page, lambda: page.locator(".exotel-status-sent").count() == 2)
    assert SmsMessage.objects.get(pk=copy.pk).body == rendered
    screens.shot("after resend")

    # Refresh from Exotel: asks for the status, finds nothing new.
    page.check(f"input.action-select[value='{message.pk}']")
    _run_action(page, screens, "refresh_status", "refresh")
    assert "Status refreshed from Exotel: 0 updated, 1 unchanged" in page.inner_text(".messagelist")
    screens.shot("after refresh")
    gets = [r for r in exotel.requests if r.method == "GET"]
    assert len(gets) == 1 and message.sid in gets[0].path


def test_batch_progress(page, live_server, admin_user, exotel, screens):
    targets = numbers(12, start=700)
    exotel.set_outcome(targets[0], "dnd")
    batch: SmsBatch = SmsMessage.objects.send_bulk(to=targets, body="Sale: 20% off today")
    _login(page, live_server, admin_user, screens)

    page.goto(_admin(live_server, "smsbatch/"))
    screens.shot("batch list")
    page.click(f"a[href$='/smsbatch/{batch.pk}/change/']")
    summary = page.locator(".exotel-progress-summary")
    assert re.fullmatch(r"\d+ of 12 final \([\d.]+%\).*", summary.inner_text())
    screens.shot("batch in progress")

    assert _reload_until(page, lambda: "done" in summary.inner_text()), summary.inner_text()
    assert summary.inner_text().startswith("12 of 12 final (100.0%)")
    row = page.locator(f".exotel-status-row-{status.SENT} .exotel-count")
    assert row.inner_text() == "11"
    failed = page.locator(f".exotel-status-row-{status.FAILED_DND} .exotel-count")
    assert failed.inner_text() == "1"
    assert page.locator(".exotel-bar-sent").count() == 1
    assert page.locator(".exotel-bar-failed").count() == 1
    screens.shot("batch done")

    # From the progress table to the failed message itself.
    failed.locator("a").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    assert targets[0] in page.inner_text("#result_list")
    screens.shot("batch failed messages")
