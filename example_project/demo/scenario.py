"""The demo's sends: DLT set-up, then a single SMS, two bulks and a template send.

Every send goes through the app's public API (``SmsMessage.objects`` and ``SmsTemplate``),
exactly as a project would call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from django_exotel_sms.models import DltEntity, SenderId, SmsMessage, SmsTemplate

ENTITY_ID = "1101000000000000001"
SENDER = "EXDEMO"
SINGLE_NUMBER = "+919812399999"
TEMPLATE_NUMBER = "+919812320000"

# What the stand-in does with some recipients (first match wins; the rest are delivered).
SANDBOX_RULES = [
    "+91981230001?=dnd",  # 10 of the same-text bulk are on DND
    "+91981230002[0-4]=failed:23035",  # 5 are temporarily unavailable
    "+919812300299=invalid",  # refused at once in Exotel's 207 answer: rejected
    "+91981231000[5-7]=dnd",  # 3 of the per-recipient bulk
]

NAMES = ["Asha", "Ravi", "Meera", "Kabir", "Priya", "Arjun", "Divya", "Rohan", "Isha", "Vikram"]


def static_number(i: int) -> str:
    return f"+91981230{i:04d}"


def dynamic_number(i: int) -> str:
    return f"+91981231{i:04d}"


@dataclass
class Group:
    """One of the demo's sends, and how to find its messages."""

    label: str
    lookup: Q

    def messages(self) -> Any:
        return SmsMessage.objects.filter(self.lookup)


def set_up_dlt() -> tuple[SmsTemplate, SmsTemplate]:
    """The DLT entity, sender ID and two templates a project registers once."""
    entity, _ = DltEntity.objects.update_or_create(
        entity_id=ENTITY_ID, defaults={"name": "Demo Retail Pvt Ltd"}
    )
    sender, _ = SenderId.objects.update_or_create(
        header=SENDER, defaults={"entity": entity, "description": "Demo transactional sender"}
    )
    shipped, _ = SmsTemplate.objects.update_or_create(
        name="order_shipped",
        defaults={
            "body": "Hi {#var#}, your order {#alphanumeric#} has shipped. "
            "Track it at {#url#} - EXDEMO",
            "dlt_template_id": "1107160000000000001",
            "sms_type": "transactional",
            "sender": sender,
            "entity": entity,
        },
    )
    otp, _ = SmsTemplate.objects.update_or_create(
        name="login_code",
        defaults={
            "body": "{#numeric#} is your demo login code. It expires in 10 minutes. - EXDEMO",
            "dlt_template_id": "1107160000000000002",
            "sms_type": "transactional",
            "sender": sender,
            "entity": entity,
        },
    )
    return shipped, otp


def send_all(bulk_size: int, dynamic_size: int) -> list[Group]:
    shipped, otp = set_up_dlt()
    groups: list[Group] = []

    single = SmsMessage.objects.send(
        SINGLE_NUMBER, "Hello from django-exotel-sms: your demo is running.", sender=SENDER
    )
    groups.append(Group("single message", Q(pk=single.pk)))

    static = SmsMessage.objects.send_bulk(
        to=(static_number(i) for i in range(bulk_size)),
        body="Demo sale: 20% off everything this weekend. - EXDEMO",
        name=f"Demo: same text to {bulk_size}",
    )
    groups.append(Group(f"same-text bulk of {bulk_size}", Q(batch=static.pk)))

    dynamic = shipped.send_bulk(
        (
            {
                "to": dynamic_number(i),
                "context": {
                    "var1": NAMES[i % len(NAMES)],
                    "var2": f"ORD{1000 + i}",
                    "var3": f"https://example.com/t/{1000 + i}",
                },
            }
            for i in range(dynamic_size)
        ),
        name=f"Demo: per-recipient text to {dynamic_size}",
    )
    groups.append(Group(f"per-recipient bulk of {dynamic_size}", Q(batch=dynamic.pk)))

    code = otp.send(TEMPLATE_NUMBER, ["482913"])
    groups.append(Group("template send", Q(pk=code.pk)))
    return groups
