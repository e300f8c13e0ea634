"""The admin's lists and tool pages at common laptop and desktop widths (1366 and 1920 px).

Each page is checked in the browser for what a person would notice -- a squeezed text
column, a clipped cell, buttons spilling out of their column, a form unlike the admin's
own -- and saved as a screenshot under artifacts/screenshots/ for a look.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_exotel_sms import status
from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate

from ..helpers import numbers
from .conftest import Screens

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = [1366, 1920]
LONG_TEXT = (
    "Hi Asha, your order ACME-10293 of 3 items has shipped with BlueDart and arrives on "
    "Friday. Track it at https://acme.example/t/10293 - ACMESH"
)
DETAILS = [
    (status.SENT, 20005, "DELIVERED_TO_HANDSET"),
    (status.FAILED, 23010, "FAILED_INVALID_DESTINATION_NUMBER"),
    (status.FAILED, 23185, "DLT_TEMPLATE_DOES_NOT_MATCH"),
    (status.FAILED_DND, 23005, "FAILED_REJECTED_DND"),
    (status.SUBMITTED, 21020, "PENDING_ON_OPERATOR"),
    (status.SENT, 20006, "DELIVERED_TO_OPERATOR"),
]


@pytest.fixture
def data(db) -> dict[str, Any]:
    template = SmsTemplate.objects.create(
        name="order_shipped_with_tracking_link",
        body="Hi {#var#}, your order {#alphanumeric#} has shipped. Track it at {#url#} - ACMESH",
        dlt_template_id="1107160000000000001",
        sms_type="transactional",
    )
    SmsTemplate.objects.create(
        name="otp", body="{#numeric#} is your login code. - ACMESH", dlt_template_id="11071"
    )
    batch = SmsBatch.objects.create(
        kind=SmsBatch.KIND_STATIC, name="Diwali sale reminder (Mumbai)", total=6
    )
    now = timezone.now()
    messages = []
    for i, (number, (st, code, detail)) in enumerate(zip(numbers(6), DETAILS, strict=True)):
        messages.append(
            SmsMessage.objects.create(
                to=number,
                body=LONG_TEXT,
                sender="ACMESH",
                template=template,
                batch=batch,
                status=st,
                detailed_status_code=code,
                detailed_status=detail,
                sid=f"b3c1a9f0d2e4c6a8b0d2e4f6a8c0{i:04d}",
                sms_units=1,
                dlt_template_id=template.dlt_template_id,
                sent_at=now - timedelta(minutes=i),
            )
        )
    return {"template": template, "messages": messages}


def _login(page: Any, live_server: Any, admin_user: Any) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def _admin(live_server: Any, path: str) -> str:
    return f"{live_server.url}/admin/django_exotel_sms/{path}"


def _no_horizontal_scroll(page: Any) -> bool:
    root = "document.documentElement"
    return bool(page.evaluate(f"{root}.scrollWidth <= {root}.clientWidth"))


def _list_fits(page: Any) -> bool:
    """The changelist table fits its box: no column hidden past its right edge."""
    return bool(
        page.evaluate(
            """(() => { const box = document.querySelector('#changelist .results');
                return box.scrollWidth <= box.clientWidth + 1; })()"""
        )
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_message_list_layout(page, live_server, admin_user, data, width):
    page.set_viewport_size({"width": width, "height": 900})
    screens = Screens(page, f"layout-{width}-message")
    _login(page, live_server, admin_user)
    page.goto(_admin(live_server, "smsmessage/"))
    page.wait_for_selector("#result_list")
    screens.shot("list")
    assert _no_horizontal_scroll(page) and _list_fits(page)
    text = page.locator("#result_list td.field-short_body").first
    assert text.bounding_box()["width"] >= 200, text.bounding_box()  # was 58 px at 1366
    # Every detailed status is shown whole: nothing cut off at the cell's edge.
    clipped = page.evaluate(
        """Array.from(document.querySelectorAll('#result_list td.field-detailed')).filter(
            td => td.scrollWidth > td.clientWidth + 1).length"""
    )
    assert clipped == 0
    shown = page.inner_text("#result_list")
    for _st, code, detail in DETAILS:
        assert str(code) in shown and detail in shown.replace("\n", "")


@pytest.mark.parametrize("width", WIDTHS)
def test_message_page_labels(page, live_server, admin_user, data, width):
    page.set_viewport_size({"width": width, "height": 900})
    screens = Screens(page, f"layout-{width}-message")
    _login(page, live_server, admin_user)
    message = data["messages"][1]
    page.goto(_admin(live_server, f"smsmessage/{message.pk}/change/"))
    page.wait_for_selector("#content-main")
    screens.shot("page")
    labels = page.locator("#content-main .form-row label").all_inner_texts()
    assert "SMS units:" in labels and "DLT template ID:" in labels, labels
    assert not [label for label in labels if label.startswith(("Sms ", "Dlt "))], labels


@pytest.mark.parametrize("width", WIDTHS)
def test_template_list_and_tools_layout(page, live_server, admin_user, data, width):
    page.set_viewport_size({"width": width, "height": 900})
    screens = Screens(page, f"layout-{width}-template")
    _login(page, live_server, admin_user)
    page.goto(_admin(live_server, "smstemplate/"))
    page.wait_for_selector("#result_list")
    screens.shot("list")
    assert _no_horizontal_scroll(page) and _list_fits(page)
    # The Preview and Test send buttons stay inside their column.
    spilled = page.evaluate(
        """Array.from(document.querySelectorAll('#result_list td.field-tools')).filter(td => {
            const cell = td.getBoundingClientRect();
            return Array.from(td.querySelectorAll('a')).some(a => {
                const r = a.getBoundingClientRect();
                return r.left < cell.left - 0.5 || r.right > cell.right + 0.5;
            });
        }).length"""
    )
    assert spilled == 0
    assert page.locator("#result_list td.field-tools a").count() == 4

    # The test-send form looks like the admin's own forms.
    template = data["template"]
    page.goto(_admin(live_server, f"smstemplate/{template.pk}/test-send/"))
    page.wait_for_selector("#exotel-test-send-form")
    screens.shot("test send")
    assert _no_horizontal_scroll(page)
    form = page.locator("#exotel-test-send-form")
    assert form.locator("input.vTextField").count() == 4  # the number and 3 variables
    assert form.locator(".submit-row input[type=submit].default").count() == 1
    labels = form.locator(".form-row label")
    assert labels.count() == 6  # the number, 3 variables, send at, expires at
    # Labels beside their fields, as on every admin form: all in one column.
    lefts = {round(box["x"]) for box in (labels.nth(i).bounding_box() for i in range(6))}
    inputs = form.locator("input.vTextField")
    input_lefts = {round(inputs.nth(i).bounding_box()["x"]) for i in range(4)}
    assert len(lefts) == 1 and len(input_lefts) == 1, (lefts, input_lefts)

    page.goto(_admin(live_server, f"smstemplate/{template.pk}/preview/"))
    page.wait_for_selector("#exotel-preview-form")
    screens.shot("preview")
    assert _no_horizontal_scroll(page)
