"""The example project's dashboard: staff only, titled, times with their zone, this run only.

Runs in a subprocess with the example project's settings on a temporary SQLite file (the
test suite's own settings do not install the demo app).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, re
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from django.test import Client
from django_exotel_sms.models import SmsMessage
from demo import runs

def make(n, body):
    return [
        SmsMessage.objects.create(to=f"+91981230{i:04d}", body=body, sender="EXDEMO").pk
        for i in range(n)
    ]

make(3, "Earlier run")
runs.start(SmsMessage.objects.order_by("-pk").values_list("pk", flat=True).first())
make(2, "Your OTP is 482913")

client = Client(HTTP_HOST="127.0.0.1")
anonymous = client.get("/")
user = get_user_model().objects.create_user("plain", password="pw")
client.force_login(user)
not_staff = client.get("/")
user.is_staff = True
user.save()
page = client.get("/").content.decode()
everything = client.get("/?since=0").content.decode()
print(json.dumps({
    "anonymous": [anonymous.status_code, anonymous.get("Location", "")],
    "not_staff": not_staff.status_code,
    "anonymous_has_otp": "482913" in anonymous.content.decode(),
    "title": re.search(r"<title>(.*?)</title>", page).group(1),
    "summary": re.search(
        r"This run \(messages after #\d+.*?\):\s*(\d+) of (\d+) final", page, re.S
    ).groups(),
    "earlier_in_run": "Earlier run" in page,
    "otp_shown_to_staff": "482913" in page,
    "zone": "Asia/Kolkata" in page and " IST" in page,
    "all_total": re.search(r"All messages:\s*(\d+) of (\d+) final", everything).groups(),
}))
"""


def test_dashboard_is_staff_only_titled_zoned_and_scoped_to_this_run(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_DB_PATH": str(tmp_path / "dashboard.sqlite3"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "example_project"), str(REPO)]),
    }
    for name in ("DATABASE_URL", "EXAMPLE_DB", "EXOTEL_SMS_OVERRIDES"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    # Not logged in (or not staff): the admin's login page, never the OTP texts.
    assert seen["anonymous"][0] == 302 and "/admin/login/" in seen["anonymous"][1]
    assert seen["not_staff"] == 302
    assert not seen["anonymous_has_otp"]
    assert seen["title"]
    assert seen["zone"]
    # This run: the 2 new messages, not the 3 of the earlier run.
    assert seen["summary"] == ["0", "2"]
    assert not seen["earlier_in_run"] and seen["otp_shown_to_staff"]
    assert seen["all_total"] == ["0", "5"]
