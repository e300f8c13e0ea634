"""Consent and suppression: refused recipients are saved ``suppressed`` and never reach Exotel.

Sends go over real HTTP to the local Exotel stand-in; its request log shows what reached it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_exotel_sms import phone, sending, signals, status, suppression
from django_exotel_sms.models import SmsBatch, SmsMessage, SmsTemplate, StatusEvent, Suppression

from .helpers import numbers

pytestmark = pytest.mark.django_db

PROMO_SENDER = "123456"


def _reached(sandbox) -> list[str]:
    """Every recipient the stand-in was asked to send to, in order (repeats kept)."""
    return [n for r in sandbox.requests if r.method == "POST" for n in r.recipients]


def _by_number(qs) -> dict[str, tuple[str, str]]:
    return {m.to: (m.status, m.status_reason) for m in qs}


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run the after-commit hooks (synchronous sending) of what the body does."""

    def _run(func, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return func(*args, **kwargs)

    return _run


@pytest.fixture
def changes():
    seen: list[tuple[str, str, str]] = []

    def changed(sender, message, previous_status, new_status, **kw):
        seen.append(("changed", message.to, new_status))

    def failed(sender, message, previous_status, **kw):
        seen.append(("failed", message.to, message.status))

    signals.sms_status_changed.connect(changed, weak=False)
    signals.sms_failed.connect(failed, weak=False)
    yield seen
    signals.sms_status_changed.disconnect(changed)
    signals.sms_failed.disconnect(failed)


# -- the Python API -------------------------------------------------------------------------


def test_any_number_format_is_one_entry_and_scope_decides():
    entry = suppression.suppress("09876543210", reason="opt_out")
    assert entry.number == "+919876543210"
    again = suppression.suppress("+91 98765 43210", reason="dnd", scope="promotional")
    assert Suppression.objects.count() == 2 and again.scope == "promotional"
    assert suppression.is_suppressed("98765 43210", "transactional")
    assert suppression.unsuppress("+919876543210", scope="all") == 1
    assert not suppression.is_suppressed("09876543210", "transactional")
    assert not suppression.is_suppressed("09876543210")
    assert suppression.is_suppressed("09876543210", "promotional")
    assert suppression.unsuppress("9876543210") == 1
    assert not suppression.is_suppressed("09876543210", "promotional")


def test_expired_entries_do_not_suppress():
    past = timezone.now() - timedelta(minutes=1)
    suppression.suppress("+919876543210", reason="manual", expires_at=past)
    assert not suppression.is_suppressed("+919876543210")
    suppression.suppress("+919876543210", expires_at=timezone.now() + timedelta(hours=1))
    assert suppression.is_suppressed("+919876543210")


def test_bad_input_is_refused():
    with pytest.raises(phone.InvalidNumber):
        suppression.suppress("12")
    with pytest.raises(ValueError, match="reason must be one of"):
        suppression.suppress("+919876543210", reason="bored")
    with pytest.raises(ValueError, match="scope must be one of"):
        suppression.suppress("+919876543210", scope="some")


# -- single, static bulk, dynamic bulk, template sends ------------------------------------------


def test_single_send_to_a_suppressed_number_is_saved_suppressed_and_never_sent(
    sandbox, run, changes
):
    ok, blocked = numbers(2)
    suppression.suppress(blocked, reason="opt_out")
    refused = run(SmsMessage.objects.send, blocked, "Your code is 1", send_async=False)
    sent = run(SmsMessage.objects.send, ok, "Your code is 2", send_async=False)
    assert (refused.status, refused.status_reason) == (status.SUPPRESSED, "opt_out")
    refused.refresh_from_db()
    assert (refused.status, refused.status_reason, refused.sid) == ("suppressed", "opt_out", None)
    assert refused.events.get().status == status.SUPPRESSED
    sent.refresh_from_db()
    assert sent.status == status.QUEUED
    assert _reached(sandbox) == [ok]
    # Signalled like any final status; not a failure, so sms_failed stays quiet.
    assert ("changed", blocked, "suppressed") in changes
    assert not [c for c in changes if c[0] == "failed"]


def test_static_bulk_sends_everyone_else_once(sandbox, run):
    targets = numbers(250, start=1000)
    blocked = set(targets[::10])
    for number in blocked:
        suppression.suppress(number, reason="dnd")
    batch = run(SmsMessage.objects.send_bulk, to=targets, body="Sale today", send_async=False)
    reached = _reached(sandbox)
    assert sorted(reached) == sorted(set(targets) - blocked)
    rows = _by_number(batch.messages.all())
    assert {n for n, v in rows.items() if v == ("suppressed", "dnd")} == blocked
    assert batch.status_counts() == {status.QUEUED: 225, status.SUPPRESSED: 25}
    progress = batch.progress()
    assert (progress["total"], progress["final"], progress["accepted"]) == (250, 25, 225)


def test_dynamic_bulk_and_template_sends(sandbox, run):
    targets = numbers(6, start=2000)
    suppression.suppress(targets[1], reason="blacklist")
    suppression.suppress(targets[4], reason="consent")
    batch = run(
        SmsMessage.objects.send_bulk,
        messages=[{"to": n, "body": f"Hello {i}"} for i, n in enumerate(targets)],
        send_async=False,
    )
    rows = _by_number(batch.messages.all())
    assert rows[targets[1]] == ("suppressed", "blacklist")
    assert rows[targets[4]] == ("suppressed", "consent")
    assert sorted(_reached(sandbox)) == sorted(set(targets) - {targets[1], targets[4]})

    otp = SmsTemplate.objects.create(name="otp", body="Your OTP is {#var#}", dlt_template_id="11")
    more = numbers(3, start=2100)
    suppression.suppress(more[0], reason="opt_out")
    single = run(otp.send, more[0], ["1234"], send_async=False)
    assert (single.status, single.status_reason) == ("suppressed", "opt_out")
    tbatch = run(otp.send_bulk, [{"to": n, "context": ["99"]} for n in more], send_async=False)
    assert _by_number(tbatch.messages.all())[more[0]] == ("suppressed", "opt_out")
    reached = _reached(sandbox)
    assert more[0] not in reached
    assert reached.count(more[1]) == reached.count(more[2]) == 1


def test_promotional_scope_leaves_transactional_traffic_alone(sandbox, run):
    number = numbers(1, start=3000)[0]
    suppression.suppress(number, reason="dnd", scope="promotional")
    txn = run(SmsMessage.objects.send, number, "Your code is 1", send_async=False)
    promo = run(
        SmsMessage.objects.send,
        number,
        "Big sale",
        sms_type="promotional",
        sender=PROMO_SENDER,
        send_async=False,
    )
    txn.refresh_from_db()
    assert txn.status == status.QUEUED
    assert (promo.status, promo.status_reason) == ("suppressed", "dnd")
    assert _reached(sandbox) == [number]


def test_a_suppression_added_after_saving_holds_at_claim(sandbox):
    targets = numbers(5, start=4000)
    batch = SmsMessage.objects.send_bulk(to=targets, body="Sale")  # rows stay pending
    suppression.suppress(targets[2], reason="opt_out")
    sending.deliver_batch(batch.pk)
    assert _by_number(batch.messages.all())[targets[2]] == ("suppressed", "opt_out")
    assert sorted(_reached(sandbox)) == sorted(set(targets) - {targets[2]})
    event = StatusEvent.objects.get(message__to=targets[2])
    assert event.status == status.SUPPRESSED and "refused at claim" in event.note


# -- cost: one set-based look-up per chunk ---------------------------------------------------


def _compose_queries(targets: list[str]) -> tuple[int, SmsBatch]:
    with CaptureQueriesContext(connection) as ctx:
        batch = SmsMessage.objects.send_bulk(to=targets, body="Same text")
    return len(ctx.captured_queries), batch


def _deliver_queries(batch: SmsBatch) -> int:
    with CaptureQueriesContext(connection) as ctx:
        sending.deliver_batch(batch.pk)
    return len(ctx.captured_queries)


def _per_chunk(sandbox, every: int) -> tuple[int, int]:
    """Queries per 100-row chunk (compose, deliver) with 1 in ``every`` recipients suppressed."""
    compose: dict[int, int] = {}
    deliver: dict[int, int] = {}
    for chunks in (1, 2, 3):
        # Composing chunks all recipients: 100 per chunk, one in ``every`` suppressed.
        targets = numbers(100 * chunks, start=100_000 * chunks + 10_000 * every)
        blocked = targets[::every] if every else []
        for number in blocked:
            suppression.suppress(number, reason="opt_out")
        compose[chunks], batch = _compose_queries(targets)
        counts = batch.status_counts()
        assert counts.get(status.SUPPRESSED, 0) == len(blocked)
        # Sending chunks the others: 100 per chunk to send, plus the suppressed share.
        sendable = numbers(100 * chunks, start=100_000 * chunks + 10_000 * every + 1000)
        extra = numbers(100 // (every - 1) * chunks if every else 0, start=50_000 + 1000 * every)
        for number in extra:
            suppression.suppress(number, reason="opt_out")
        _, batch = _compose_queries(sendable + extra)
        deliver[chunks] = _deliver_queries(batch)
        assert batch.status_counts() == {
            status.QUEUED: len(sendable),
            **({status.SUPPRESSED: len(extra)} if extra else {}),
        }
    for counted in (compose, deliver):
        assert counted[3] - counted[2] == counted[2] - counted[1], (every, compose, deliver)
    return compose[2] - compose[1], deliver[2] - deliver[1]


def test_queries_per_chunk_are_constant_with_and_without_suppressions(sandbox):
    none, tenth, half = (_per_chunk(sandbox, every) for every in (0, 10, 2))
    # Sending costs exactly the same whatever the share suppressed (they are never claimed).
    assert none[1] == tenth[1] == half[1], (none, tenth, half)
    # Composing: one look-up per chunk always; a chunk with refused rows costs gate.close's
    # fixed few statements more (savepoint, lock, update, history, release), never one per number.
    assert tenth[0] == half[0] <= none[0] + 5, (none, tenth, half)


# -- fed from Exotel's answers ------------------------------------------------------------------


def _callback(client, message: SmsMessage, word: str, code: int) -> None:
    from django.urls import reverse

    from django_exotel_sms import callbacks

    token = callbacks.make_token(callbacks.MESSAGE, message.pk, message.created_at)
    form = {
        "SmsSid": message.sid,
        "To": message.to,
        "Status": word,
        "DetailedStatusCode": str(code),
        "DetailedStatus": status.describe_code(code).name,
    }
    url = reverse("django_exotel_sms:status-callback", args=[token])
    assert client.post(url, form).status_code == 200


def _promo(number: str) -> SmsMessage:
    return SmsMessage.objects.send(
        number, "Big sale", sms_type="promotional", sender=PROMO_SENDER, send_async=False
    )


def test_a_dnd_callback_suppresses_promotional_traffic_only(sandbox, run, client):
    number = numbers(1, start=5000)[0]
    first = run(_promo, number)
    first.refresh_from_db()
    assert first.status == status.QUEUED
    _callback(client, first, "failed-dnd", 23005)
    entry = Suppression.objects.get(number=number)
    assert (entry.reason, entry.scope, entry.source) == ("dnd", "promotional", "callback")
    txn = run(SmsMessage.objects.send, number, "Your code is 7", send_async=False)
    txn.refresh_from_db()
    assert txn.status == status.QUEUED
    second = run(_promo, number)
    assert (second.status, second.status_reason) == ("suppressed", "dnd")
    assert _reached(sandbox) == [number, number]  # the first promotional and the transactional


def test_invalid_number_needs_repeated_failures_and_temporary_failures_never_count(
    sandbox, run, client
):
    number, flaky = numbers(2, start=6000)
    for _ in range(3):
        message = run(SmsMessage.objects.send, flaky, "Hi", send_async=False)
        message.refresh_from_db()
        _callback(client, message, "failed", 23035)  # subscriber unavailable: temporary
    assert not Suppression.objects.exists()
    first = run(SmsMessage.objects.send, number, "Hi", send_async=False)
    first.refresh_from_db()
    _callback(client, first, "failed", 23010)
    assert not Suppression.objects.exists()  # one failure: not yet (threshold 2)
    second = run(SmsMessage.objects.send, number, "Hi", send_async=False)
    second.refresh_from_db()
    _callback(client, second, "failed", 23040)  # same reason, other code: counts together
    entry = Suppression.objects.get()
    assert (entry.number, entry.reason, entry.scope) == (number, "invalid_number", "all")


def test_suppression_codes_is_a_setting(sandbox, run, client, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "SUPPRESSION_CODES": {"23020": ["manual", "all"]}}
    number = numbers(1, start=7000)[0]
    message = run(SmsMessage.objects.send, number, "Hi", send_async=False)
    message.refresh_from_db()
    _callback(client, message, "failed", 23020)
    assert Suppression.objects.get().reason == "manual"
    other = run(SmsMessage.objects.send, numbers(1, start=7001)[0], "Hi", send_async=False)
    other.refresh_from_db()
    _callback(client, other, "failed-dnd", 23005)  # no longer in the map
    assert Suppression.objects.count() == 1


# -- allow-list, veto and per-recipient limits, for every kind of send ---------------------------


@pytest.fixture
def guarded(settings):
    """Five numbers: suppressed, not allowed, vetoed, limited to one message, and free."""
    suppressed, vetoed, limited, free = numbers(4, start=8000)
    outsider = numbers(1, start=9000)[0]
    suppression.suppress(suppressed, reason="opt_out")
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "ALLOWED_RECIPIENTS": ["+91 98700 0800*", "09870009999"],
        "RECIPIENT_LIMITS": {"*": "1/hour"},
    }

    def veto(sender, message, **kwargs):
        assert message.pk is None  # before anything is saved
        if message.to == vetoed:
            raise suppression.SendVetoed("quiet_hours")

    signals.pre_send.connect(veto, weak=False)
    yield suppressed, outsider, vetoed, limited, free
    signals.pre_send.disconnect(veto)


def _otp() -> SmsTemplate:
    return SmsTemplate.objects.create(name="otp", body="Your OTP is {#var#}", dlt_template_id="11")


@pytest.mark.parametrize("kind", ["static", "dynamic", "template"])
def test_bulk_refusals_never_reach_exotel(sandbox, run, guarded, kind):
    suppressed, outsider, vetoed, limited, free = guarded
    targets = [suppressed, outsider, vetoed, limited, limited, free]
    if kind == "static":
        batch = run(SmsMessage.objects.send_bulk, to=targets, body="Hi", send_async=False)
    elif kind == "dynamic":
        messages = [{"to": n, "body": f"Hi {i}"} for i, n in enumerate(targets)]
        batch = run(SmsMessage.objects.send_bulk, messages=messages, send_async=False)
    else:
        recipients = [{"to": n, "context": ["42"]} for n in targets]
        batch = run(_otp().send_bulk, recipients, send_async=False)
    rows = list(batch.messages.order_by("pk").values_list("to", "status", "status_reason"))
    assert rows == [
        (suppressed, "suppressed", "opt_out"),
        (outsider, "suppressed", "not_allowed"),
        (vetoed, "suppressed", "quiet_hours"),
        (limited, "queued", ""),
        (limited, "suppressed", "rate_limited"),
        (free, "queued", ""),
    ]
    assert sorted(_reached(sandbox)) == sorted([limited, free])


@pytest.mark.parametrize("kind", ["plain", "template"])
def test_single_refusals_never_reach_exotel(sandbox, run, guarded, kind):
    suppressed, outsider, vetoed, limited, free = guarded
    otp = _otp()

    def send(number: str) -> SmsMessage:
        if kind == "template":
            return run(otp.send, number, ["42"], send_async=False)
        return run(SmsMessage.objects.send, number, "Hi", send_async=False)

    for number, reason in (
        (suppressed, "opt_out"),
        (outsider, "not_allowed"),
        (vetoed, "quiet_hours"),
    ):
        message = send(number)
        message.refresh_from_db()
        assert (message.status, message.status_reason) == ("suppressed", reason)
    assert send(limited).status == status.PENDING  # saved, sent on commit
    saved = SmsMessage.objects.count()
    with pytest.raises(suppression.RecipientLimitExceeded) as caught:
        send(limited)
    assert 3500 < caught.value.retry_after <= 3600
    assert caught.value.number == limited and "1 per 1 hour" in caught.value.limit
    assert SmsMessage.objects.count() == saved  # nothing saved
    send(free)
    assert sorted(_reached(sandbox)) == sorted([limited, free])


def test_limits_by_template_and_type_count_separately(sandbox, run, settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "RECIPIENT_LIMITS": {"template:otp": "2/hour", "promotional": "1/day"},
    }
    number = numbers(1, start=8100)[0]
    otp = _otp()
    for _ in range(2):
        run(otp.send, number, ["1"], send_async=False)
    with pytest.raises(suppression.RecipientLimitExceeded):
        run(otp.send, number, ["1"], send_async=False)
    run(SmsMessage.objects.send, number, "Your parcel is out", send_async=False)  # no limit
    promo = {"sms_type": "promotional", "sender": PROMO_SENDER, "send_async": False}
    run(SmsMessage.objects.send, number, "Sale", **promo)
    with pytest.raises(suppression.RecipientLimitExceeded):
        run(SmsMessage.objects.send, number, "Sale", **promo)
    assert _reached(sandbox) == [number] * 4


def test_a_refused_message_does_not_use_up_the_limit(sandbox, run, settings):
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RECIPIENT_LIMITS": {"*": "1/hour"}}
    number = numbers(1, start=8200)[0]
    suppression.suppress(number, reason="manual")
    assert run(SmsMessage.objects.send, number, "Hi", send_async=False).status == "suppressed"
    suppression.unsuppress(number)
    message = run(SmsMessage.objects.send, number, "Hi", send_async=False)
    message.refresh_from_db()
    assert message.status == status.QUEUED


def test_other_exceptions_from_pre_send_propagate_and_save_nothing(sandbox):
    def broken(sender, message, **kwargs):
        raise RuntimeError("receiver bug")

    signals.pre_send.connect(broken, weak=False)
    try:
        with pytest.raises(RuntimeError):
            SmsMessage.objects.send_bulk(to=numbers(3, start=8300), body="Hi")
    finally:
        signals.pre_send.disconnect(broken)
    assert not SmsMessage.objects.exists() and not SmsBatch.objects.exists()


def test_allowed_recipients_take_numbers_in_any_format_and_prefixes(settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "ALLOWED_RECIPIENTS": ["09876543210", "+65 9*"],
    }
    assert suppression.is_allowed("+919876543210")
    assert suppression.is_allowed("+6591234567")
    assert not suppression.is_allowed("+919876543211")
    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "ALLOWED_RECIPIENTS": None}
    assert suppression.is_allowed("+919876543211")


# -- system checks ------------------------------------------------------------------------------


def _check_ids(settings, **changes) -> list[str]:
    from django_exotel_sms.checks import check_consent_settings
    from tests.settings import EXOTEL_SMS

    settings.EXOTEL_SMS = {**EXOTEL_SMS, **changes}
    return [m.id.rsplit(".", 1)[-1] for m in check_consent_settings()]


def test_checks_warn_when_the_allow_list_is_left_on_in_production(settings):
    assert _check_ids(settings) == []
    settings.DEBUG = False
    assert _check_ids(settings, ALLOWED_RECIPIENTS=["+9198*"]) == ["W040"]
    settings.DEBUG = True
    assert _check_ids(settings, ALLOWED_RECIPIENTS=["+9198*"]) == []
    assert _check_ids(settings, ALLOWED_RECIPIENTS=["12", "98*"]) == ["E042", "E042"]
    assert _check_ids(settings, ALLOWED_RECIPIENTS="+9198*") == ["E042"]


def test_checks_name_bad_codes_and_limits(settings):
    bad_codes = {"x": ("dnd", "all"), 23005: ("dnd", "some"), 23020: ("bored", "all"), 1: ("dnd",)}
    assert _check_ids(settings, SUPPRESSION_CODES=bad_codes) == ["E040"] * 4
    assert _check_ids(settings, SUPPRESSION_CODES={23010: ("invalid_number", "all", 0)}) == ["E040"]
    assert _check_ids(settings, RECIPIENT_LIMITS={"template:otp": "five an hour"}) == ["E041"]
    assert _check_ids(settings, RECIPIENT_LIMITS={"promotional": "2/day"}) == []


# -- sender validation: one rule for the Python API and the admin --------------------------------


def test_the_python_api_and_the_admin_agree_on_sender_headers():
    from django.core.exceptions import ValidationError

    from django_exotel_sms.compose import SmsValidationError
    from django_exotel_sms.models import SenderId

    with pytest.raises(ValidationError) as admin:
        SenderId(header="AB").full_clean()
    with pytest.raises(SmsValidationError) as api:
        SmsMessage.objects.send("+919876543210", "Hi", sender="AB")
    assert api.value.message_dict["sender"] == admin.value.message_dict["header"]
    assert SmsMessage.objects.send("+919876543210", "Hi", sender="08030752400").pk  # ExoPhone


def test_promotional_messages_to_india_need_a_numeric_header():
    from django_exotel_sms.compose import SmsValidationError

    with pytest.raises(SmsValidationError) as exc:
        SmsMessage.objects.send("+919876543210", "Sale", sms_type="promotional", sender="ACMEIN")
    assert "6-digit numeric sender ID" in exc.value.message_dict["sender"][0]
    with pytest.raises(SmsValidationError):
        SmsMessage.objects.send_bulk(
            messages=[{"to": "+919876543210", "body": "Sale", "sms_type": "promotional"}]
        )
    assert SmsMessage.objects.send(
        "+919876543210", "Sale", sms_type="promotional", sender=PROMO_SENDER
    ).pk


def test_reconciliation_feeds_the_list_too(sandbox, run):
    from django_exotel_sms import reconcile

    from .helpers import wait_until

    number = numbers(1, start=7100)[0]
    sandbox.set_outcome(number, "dnd")
    message = run(_promo, number)
    message.refresh_from_db()

    def refreshed() -> bool:
        reconcile.refresh_message(message)
        message.refresh_from_db()
        return message.status == status.FAILED_DND

    assert wait_until(refreshed, timeout=10)
    entry = Suppression.objects.get(number=number)
    assert (entry.reason, entry.scope, entry.source) == ("dnd", "promotional", "reconcile")
