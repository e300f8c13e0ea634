"""The management commands: exotel_send, exotel_reconcile and exotel_cleanup."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_exotel_sms import status, tasks
from django_exotel_sms.backends import locmem
from django_exotel_sms.models import (
    IdempotencyRecord,
    SmsBatch,
    SmsMessage,
    SmsTemplate,
    SmsTemplateVariant,
    StatusEvent,
)

NUMBER = "+919876543210"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def numbers(n: int) -> list[str]:
    return [f"+9198765{i:05d}" for i in range(n)]


@pytest.fixture
def otp_template(db) -> SmsTemplate:
    return SmsTemplate.objects.create(
        name="otp",
        body="{#numeric#} is your login code for {#var#}.",
        dlt_template_id="1107000000000000001",
    )


# -- exotel_send ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_send_one_sync_reaches_the_backend_and_prints_a_summary():
    out, _ = run("exotel_send", "--to", NUMBER, "--body", "Hello there", "--sync")

    message = SmsMessage.objects.get()
    assert (message.to, message.body, message.status) == (NUMBER, "Hello there", status.QUEUED)
    assert [(e.to, e.body) for e in locmem.outbox] == [(NUMBER, "Hello there")]
    assert f"Saved SMS {message.pk}" in out
    assert "Summary (1 message):" in out
    assert "queued" in out.split("Summary", 1)[1]


@pytest.mark.django_db
def test_send_one_async_saves_a_pending_message_with_the_options():
    run(
        "exotel_send",
        "--to",
        NUMBER,
        "--body",
        "Hi",
        "--sender",
        "600123",
        "--sms-type",
        "promotional",
        "--custom-field",
        "order-7",
    )

    message = SmsMessage.objects.get()
    assert message.status == status.PENDING  # the task is enqueued on commit
    assert (message.sender, message.sms_type, message.custom_field) == (
        "600123",
        "promotional",
        "order-7",
    )
    assert locmem.outbox == []


@pytest.mark.django_db(transaction=True)
def test_send_template_with_vars(otp_template):
    run(
        "exotel_send",
        "--to",
        NUMBER,
        "--template",
        "otp",
        "--var",
        "1=482913",
        "--var",
        "var2=Demo Shop",
        "--sync",
    )

    message = SmsMessage.objects.get()
    assert message.body == "482913 is your login code for Demo Shop."
    assert message.template == otp_template
    assert message.dlt_template_id == "1107000000000000001"
    assert [e.body for e in locmem.outbox] == [message.body]


@pytest.mark.django_db
def test_send_template_with_an_invalid_var_saves_nothing(otp_template):
    with pytest.raises(CommandError) as info:
        run("exotel_send", "--to", NUMBER, "--template", "otp", "--var", "1=abc", "--var", "2=x")

    assert info.value.returncode == 1
    assert "nothing was saved" in str(info.value)
    assert "not numeric" in str(info.value)
    assert not SmsMessage.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, problem",
    [
        (["--to", NUMBER], "--body TEXT or --template NAME"),
        (["--to", NUMBER, "--body", "x", "--var", "1=2"], "--var needs --template"),
        (["--to", NUMBER, "--template", "otp", "--var", "novalue"], "KEY=VALUE"),
        (["--to", "12", "--body", "x"], "to:"),
        (["--to", NUMBER, "--template", "missing"], "No SMS template named 'missing'"),
    ],
)
def test_send_rejects_bad_arguments(args, problem, otp_template):
    with pytest.raises(CommandError, match=problem):
        run("exotel_send", *args)
    assert not SmsMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_csv_bulk_of_250(tmp_path):
    recipients = numbers(250)
    path = write_csv(
        tmp_path / "people.csv",
        ["to", "body"],
        [[n, f"Hello {i}"] for i, n in enumerate(recipients)],
    )

    out, _ = run("exotel_send", "--csv", str(path), "--sync", "--name", "spring")

    batch = SmsBatch.objects.get()
    assert (batch.kind, batch.total, batch.name) == (SmsBatch.KIND_DYNAMIC, 250, "spring")
    sent = dict(SmsMessage.objects.filter(batch=batch).values_list("to", "body"))
    assert sent == {n: f"Hello {i}" for i, n in enumerate(recipients)}
    assert sorted(e.to for e in locmem.outbox) == sorted(recipients)
    assert f"Saved batch {batch.pk}: 250 messages." in out
    assert "Summary (250 messages):" in out
    assert "queued" in out and "250" in out.split("Summary", 1)[1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("columns", [["var1", "var2"], ["1", "2"]])
def test_csv_with_a_template_and_variable_columns(tmp_path, otp_template, columns):
    rows = [[n, f"{1000 + i}", f"Shop {i}"] for i, n in enumerate(numbers(5))]
    path = write_csv(tmp_path / "codes.csv", ["to", *columns], rows)

    run("exotel_send", "--csv", str(path), "--template", "otp", "--sync")

    bodies = sorted(SmsMessage.objects.values_list("body", flat=True))
    assert bodies == sorted(f"{1000 + i} is your login code for Shop {i}." for i in range(5))
    assert set(SmsMessage.objects.values_list("template", flat=True)) == {otp_template.pk}
    assert len(locmem.outbox) == 5


@pytest.mark.django_db
def test_csv_with_one_invalid_row_saves_nothing(tmp_path):
    rows = [[n, "Hello"] for n in numbers(250)]
    rows[136][0] = "not-a-number"
    path = write_csv(tmp_path / "people.csv", ["to", "body"], rows)

    with pytest.raises(CommandError) as info:
        run("exotel_send", "--csv", str(path))

    assert info.value.returncode == 1
    assert "Message 137 (to)" in str(info.value)
    assert "nothing was saved" in str(info.value)
    assert not SmsMessage.objects.exists()
    assert not SmsBatch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header, rows, problem",
    [
        (["number", "body"], [[NUMBER, "x"]], "'to' column"),
        (["to", "body", "name"], [[NUMBER, "x", "A"]], "Unknown CSV column"),
        (["to"], [[NUMBER]], "'body' column, or pass --template"),
        (["to", "var1"], [[NUMBER, "1"]], "pass --template"),
        (["to", "body"], [[NUMBER, "x", "extra"]], "line 2 has more fields"),
    ],
)
def test_csv_problems_are_reported_and_nothing_is_saved(tmp_path, header, rows, problem):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(CommandError, match=problem):
        run("exotel_send", "--csv", str(path))
    assert not SmsMessage.objects.exists()
    assert not SmsBatch.objects.exists()


EN_ID, HI_ID = "1107000000000000501", "1107000000000000502"


@pytest.fixture
def shipped(db) -> SmsTemplate:
    tpl = SmsTemplate.objects.create(
        name="shipped",
        body="Dear {#var#}, order {#numeric#} shipped. - ACME",
        dlt_template_id=EN_ID,
    )
    SmsTemplateVariant.objects.create(
        template=tpl,
        language="hi",
        body="प्रिय {#var#}, ऑर्डर {#numeric#} भेजा गया। - ACME",
        dlt_template_id=HI_ID,
    )
    return tpl


@pytest.mark.django_db
def test_send_template_in_a_language(shipped):
    for language in ("hi", "hi-IN", "ta"):  # hi-IN falls back to hi; ta to the template
        run(
            "exotel_send",
            "--to",
            NUMBER,
            "--template",
            "shipped",
            "--language",
            language,
            "--var",
            "1=Asha",
            "--var",
            "2=42",
        )
    rows = list(SmsMessage.objects.order_by("pk").values_list("dlt_template_id", "encoding"))
    assert rows == [(HI_ID, "unicode"), (HI_ID, "unicode"), (EN_ID, "plain")]
    assert SmsMessage.objects.order_by("pk").first().body == "प्रिय Asha, ऑर्डर 42 भेजा गया। - ACME"


@pytest.mark.django_db
def test_csv_language_column_and_default_language(tmp_path, shipped):
    path = write_csv(
        tmp_path / "orders.csv",
        ["to", "var1", "var2", "language"],
        [[n, f"C{i}", str(i), ["hi", "en", ""][i]] for i, n in enumerate(numbers(3))],
    )
    run("exotel_send", "--csv", str(path), "--template", "shipped", "--language", "hi")
    ids = dict(SmsMessage.objects.values_list("to", "dlt_template_id"))
    # Row 3 has no language of its own: --language's.
    assert [ids[n] for n in numbers(3)] == [HI_ID, EN_ID, HI_ID]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, problem",
    [
        (["--to", NUMBER, "--body", "x", "--language", "hi"], "--language needs --template"),
        (
            ["--to", NUMBER, "--template", "shipped", "--language", "h!", "--var", "1=A"],
            "language: 'h!' is not a language code",
        ),
    ],
)
def test_send_rejects_a_bad_language(args, problem, shipped):
    with pytest.raises(CommandError, match=re.escape(problem)):
        run("exotel_send", *args)
    assert not SmsMessage.objects.exists()


@pytest.mark.django_db
def test_csv_language_column_needs_a_template(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["to", "body", "language"], [[NUMBER, "x", "hi"]])
    with pytest.raises(CommandError, match="'language' column"):
        run("exotel_send", "--csv", str(path))
    assert not SmsBatch.objects.exists()


@pytest.mark.django_db
def test_csv_file_missing(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("exotel_send", "--csv", str(tmp_path / "nope.csv"))


@pytest.mark.django_db(transaction=True)
def test_wait_shows_a_progress_bar_until_final(sandbox):
    sandbox.set_outcome(NUMBER, "invalid")  # refused by the API: final at once

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 of 1 message"):
        call_command(
            *("exotel_send", "--to", NUMBER, "--body", "Hi", "--sync", "--wait"),
            stdout=out,
            stderr=err,
        )

    assert SmsMessage.objects.get().status == status.REJECTED
    assert "[" + "#" * 30 + "] 1/1 final (rejected 1)" in err.getvalue()
    assert "rejected" in out.getvalue().split("Summary", 1)[1]


@pytest.mark.django_db(transaction=True)
def test_sync_rejected_prints_exotels_code_and_text_and_exits_1(sandbox):
    sandbox.set_outcome(NUMBER, "invalid")  # refused by the API with 23010
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 of 1 message.*not accepted") as info:
        call_command(
            "exotel_send", "--to", NUMBER, "--body", "Hi", "--sync", stdout=out, stderr=err
        )
    assert info.value.returncode == 1
    message = SmsMessage.objects.get()
    assert message.status == status.REJECTED and message.error_code is not None
    line = f"SMS {message.pk} to {NUMBER}: rejected, Exotel code {message.error_code}"
    assert line in err.getvalue()
    assert message.error_message and message.error_message in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_sync_shows_each_retry_and_exits_1_when_exotel_is_unreachable(settings):
    settings.EXOTEL_SMS = {
        **settings.EXOTEL_SMS,
        "BACKEND": "django_exotel_sms.backends.exotel.ExotelBackend",
        "BASE_URL": "http://127.0.0.1:9",  # refused at once
        "MAX_ATTEMPTS": 3,
        "RETRY_BACKOFF": 0.01,
        "RETRY_BACKOFF_MAX": 0.05,
    }
    err = StringIO()
    with pytest.raises(CommandError, match="not accepted"):
        call_command(
            "exotel_send", "--to", NUMBER, "--body", "Hi", "--sync", stdout=StringIO(), stderr=err
        )
    lines = err.getvalue().splitlines()
    retries = [line for line in lines if "retrying in" in line]
    assert len(retries) == 2  # attempts 1 and 2; the third gives up
    assert "attempt 1 of 3" in retries[0] and "could not connect to Exotel" in retries[0]
    message = SmsMessage.objects.get()
    assert message.status == status.FAILED
    assert any(line.startswith(f"SMS {message.pk} to {NUMBER}: failed") for line in lines)
    assert "Gave up after 3 attempts" in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_wait_times_out_with_exit_code_1_when_not_final(sandbox):
    # Delivered at the sandbox, but its callback goes nowhere: stays queued here.
    with pytest.raises(CommandError, match="Timed out") as info:
        run(
            "exotel_send",
            "--to",
            NUMBER,
            "--body",
            "Hi",
            "--sync",
            "--wait",
            "--timeout",
            "0.3",
            "--poll",
            "0.1",
        )
    assert info.value.returncode == 1
    assert SmsMessage.objects.get().status == status.QUEUED


# -- exotel_reconcile -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_reconcile_refreshes_open_messages_and_resumes_lost_sends(monkeypatch):
    monkeypatch.setattr(tasks.send_message, "apply_async", lambda *a, **k: None)  # "lost"
    run("exotel_send", "--to", NUMBER, "--body", "Hi", "--sync")
    open_message = SmsMessage.objects.get()
    long_ago = timezone.now() - timedelta(hours=2)
    SmsMessage.objects.filter(pk=open_message.pk).update(updated_at=long_ago)
    # A message whose task was lost: pending for a while, never sent.
    run("exotel_send", "--to", "+919876500001", "--body", "Lost")
    lost = SmsMessage.objects.get(status=status.PENDING)
    SmsMessage.objects.filter(pk=lost.pk).update(created_at=long_ago)

    out, _ = run("exotel_reconcile", "--sync")

    assert "Reconciliation report:" in out
    assert _report_value(out, "Messages checked with Exotel") == 1
    assert _report_value(out, "Messages moved forward") == 1
    assert _report_value(out, "Single messages resumed (sent in this process)") == 1
    assert SmsMessage.objects.get(pk=open_message.pk).status == status.SENT  # locmem says sent
    assert SmsMessage.objects.get(pk=lost.pk).status == status.QUEUED
    assert StatusEvent.objects.filter(
        message=open_message, source=StatusEvent.SOURCE_RECONCILE, status=status.SENT
    ).exists()


@pytest.mark.django_db
def test_reconcile_enqueues_resumed_work(monkeypatch):
    calls = []
    monkeypatch.setattr(tasks.send_message, "apply_async", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(tasks.send_batch, "apply_async", lambda *a, **k: calls.append(("b", a)))
    message = SmsMessage.objects.send(NUMBER, "Lost")
    SmsMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )

    out, _ = run("exotel_reconcile")

    assert calls == [((message.pk,),)]
    assert _report_value(out, "Single messages resumed (enqueued)") == 1
    assert _report_value(out, "Messages checked with Exotel") == 0


def _report_value(out: str, label: str) -> int:
    for line in out.splitlines():
        if line.strip().startswith(label + ":"):
            return int(line.rsplit(None, 1)[-1])
    raise AssertionError(f"{label!r} not in report:\n{out}")


# -- exotel_cleanup -------------------------------------------------------------------------


def _age(message: SmsMessage, days: int, new_status: str) -> None:
    SmsMessage.objects.filter(pk=message.pk).update(
        status=new_status, created_at=timezone.now() - timedelta(days=days)
    )
    StatusEvent.objects.create(message=message, status=new_status, source=StatusEvent.SOURCE_API)


@pytest.fixture
def history(db, settings):
    old_sent = SmsMessage.objects.send("+919876500001", "a")
    old_failed = SmsMessage.objects.send("+919876500002", "b")
    old_pending = SmsMessage.objects.send("+919876500003", "c")
    new_sent = SmsMessage.objects.send("+919876500004", "d")
    old_queued = SmsMessage.objects.send("+919876500005", "e")
    _age(old_sent, 40, status.SENT)
    _age(old_failed, 31, status.FAILED_DND)
    _age(old_pending, 40, status.PENDING)
    _age(new_sent, 5, status.SENT)
    _age(old_queued, 40, status.QUEUED)
    # A batch whose messages all go, and one that keeps a message still open.
    emptied = SmsMessage.objects.send_bulk(to=["+919876500010", "+919876500011"], body="f")
    kept = SmsMessage.objects.send_bulk(to=["+919876500012", "+919876500013"], body="g")
    for m in SmsMessage.objects.filter(batch=emptied):
        _age(m, 60, status.REJECTED)
    first, second = SmsMessage.objects.filter(batch=kept).order_by("pk")
    _age(first, 60, status.SENT)
    _age(second, 60, status.SUBMITTED)
    SmsBatch.objects.filter(pk__in=[emptied.pk, kept.pk]).update(
        created_at=timezone.now() - timedelta(days=60)
    )
    ttl = settings.EXOTEL_SMS.get("IDEMPOTENCY_KEY_TTL", 24 * 3600)
    stale = IdempotencyRecord.objects.create(
        key="k1", user_key="1", endpoint="send", request_hash="h"
    )
    fresh = IdempotencyRecord.objects.create(
        key="k2", user_key="1", endpoint="send", request_hash="h"
    )
    IdempotencyRecord.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(seconds=ttl + 60)
    )
    return {
        "deleted": {
            old_sent.pk,
            old_failed.pk,
            *emptied.messages.values_list("pk", flat=True),
            first.pk,
        },
        "kept": {old_pending.pk, new_sent.pk, old_queued.pk, second.pk},
        "emptied": emptied,
        "kept_batch": kept,
        "fresh_record": fresh,
    }


def test_cleanup_dry_run_counts_and_deletes_nothing(history):
    before = (SmsMessage.objects.count(), StatusEvent.objects.count(), SmsBatch.objects.count())

    out, _ = run("exotel_cleanup", "--days", "30", "--dry-run")

    assert "would delete 5 final messages older than 30 days" in out
    assert "1 batch(es) left empty" in out
    assert "1 expired idempotency record(s)" in out
    after = (SmsMessage.objects.count(), StatusEvent.objects.count(), SmsBatch.objects.count())
    assert after == before
    assert IdempotencyRecord.objects.count() == 2


def test_cleanup_deletes_only_old_final_messages_in_slices(history):
    out, _ = run("exotel_cleanup", "--days", "30", "--batch-size", "2")

    remaining = set(SmsMessage.objects.values_list("pk", flat=True))
    assert remaining == history["kept"]
    assert not StatusEvent.objects.filter(message_id__in=history["deleted"]).exists()
    assert StatusEvent.objects.filter(message_id__in=history["kept"]).count() == 4
    assert not SmsBatch.objects.filter(pk=history["emptied"].pk).exists()
    assert SmsBatch.objects.filter(pk=history["kept_batch"].pk).exists()
    assert list(IdempotencyRecord.objects.all()) == [history["fresh_record"]]
    assert "Deleted 5 final messages older than 30 days (with 5 status events" in out
    assert "in 3 slice(s) of up to 2" in out
    assert "1 empty batch(es)" in out


def test_cleanup_with_more_days_keeps_more(history):
    run("exotel_cleanup", "--days", "45")
    assert SmsMessage.objects.count() == 9 - 3  # only the 60-day-old final ones went


@pytest.mark.django_db
@pytest.mark.parametrize("args", [["--days", "-1"], ["--days", "3", "--batch-size", "0"]])
def test_cleanup_rejects_bad_numbers(args):
    with pytest.raises(CommandError):
        run("exotel_cleanup", *args)
