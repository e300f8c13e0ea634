"""``manage.py exotel_suppressions``: list, add, remove, import and export with progress."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_exotel_sms import suppression
from django_exotel_sms.models import Suppression

pytestmark = pytest.mark.django_db

TO = "+919876543210"


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("exotel_suppressions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_add_list_remove():
    out, _ = run("add", "09876543210", "--reason", "opt_out", "--note", "replied STOP")
    assert out.strip() == f"Suppressed {TO} (opt_out, all)."
    assert Suppression.objects.get().source == "command"
    out, _ = run("list", "--number", "+91 98765 43210")
    assert f"{TO}  opt_out  all  command" in out and "replied STOP" in out
    assert "1 of 1 suppression shown." in out
    assert "0 of 0 suppressions shown." in run("list", "--reason", "dnd")[0]
    assert run("remove", "9876543210")[0].strip() == "Removed 1 suppression."
    with pytest.raises(CommandError, match="not a phone number"):
        run("add", "nonsense")


def test_import_with_progress_then_export(tmp_path: Path):
    lines = ["number,reason,scope"]
    lines += [f"+91987{i:07d},opt_out,all" for i in range(1200)]
    lines += ["12,opt_out,all"]
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    out, err = run("import", str(source))
    assert "Imported 1200; skipped 1 invalid line(s)." in out and "Line 1202" in out
    assert "[##############################] 1201/1201 lines" in err  # progress bar
    assert Suppression.objects.filter(source="import").count() == 1200
    assert suppression.is_suppressed("09870000042")
    target = tmp_path / "out.csv"
    out, err = run("export", str(target))
    assert "Exported 1200 suppression(s)" in out and "1200/1200 rows" in err
    exported = target.read_text().splitlines()
    assert exported[0] == "number,reason,scope,source,note,expires_at"
    assert len(exported) == 1201
    # Re-importing the export changes nothing (an upsert per number and scope).
    run("import", str(target))
    assert Suppression.objects.count() == 1200


def test_export_to_stdout_and_bad_files(tmp_path: Path):
    suppression.suppress(TO, reason="dnd", scope="promotional")
    out, _ = run("export", "-")
    assert out.splitlines()[1] == f"{TO},dnd,promotional,api,,"
    with pytest.raises(CommandError, match="No such file"):
        run("import", str(tmp_path / "missing.csv"))
    (tmp_path / "noheader.csv").write_text("to\n+919876543210\n")
    out, _ = run("import", str(tmp_path / "noheader.csv"))
    assert "needs a header line with a 'number' column" in out


def test_exotel_send_over_a_recipient_limit_is_a_command_error(settings):
    from django_exotel_sms.models import SmsMessage

    settings.EXOTEL_SMS = {**settings.EXOTEL_SMS, "RECIPIENT_LIMITS": {"*": "1/hour"}}
    call_command("exotel_send", "--to", TO, "--body", "Hi", stdout=StringIO())
    with pytest.raises(CommandError, match="Too many messages to .* Nothing was saved"):
        call_command("exotel_send", "--to", TO, "--body", "Hi", stdout=StringIO())
    assert SmsMessage.objects.count() == 1
