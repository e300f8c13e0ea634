"""OpenAPI: the schema drf-spectacular generates for the API validates, and the API runs
without drf-spectacular installed."""

from __future__ import annotations

import builtins
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.urls import include, path

from django_exotel_sms.api import schema as api_schema

spectacular = pytest.importorskip(
    "drf_spectacular", reason="drf-spectacular (the 'openapi' extra) is not installed"
)

SPECTACULAR = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}


@pytest.fixture(scope="module")
def openapi() -> Iterator[dict[str, Any]]:
    """The schema as a project with drf-spectacular configured gets it.

    drf-spectacular's decorators capture DEFAULT_SCHEMA_CLASS when the views module is
    imported, so the views are re-imported under that setting (and again after).
    """
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    from django_exotel_sms.api import routers, views
    from django_exotel_sms.reports import api as exports_api

    try:
        with override_settings(REST_FRAMEWORK=SPECTACULAR):
            importlib.reload(views)
            importlib.reload(exports_api)
            importlib.reload(routers)
            GENERATOR_STATS.reset()
            generator = SchemaGenerator(
                patterns=[path("api/sms/", include(routers.router.urls))], title="SMS"
            )
            document: dict[str, Any] = generator.get_schema(request=None, public=True)
            warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    finally:
        importlib.reload(views)
        importlib.reload(exports_api)
        importlib.reload(routers)
    # Nothing drf-spectacular had to guess at or give up on.
    assert warnings == {}
    assert errors == {}
    yield document


def test_schema_validates(openapi) -> None:
    from drf_spectacular.validation import validate_schema

    validate_schema(openapi)


def test_schema_covers_every_endpoint_and_action(openapi) -> None:
    paths = openapi["paths"]
    expected = {
        "/api/sms/messages/": {"get", "post"},
        "/api/sms/messages/{id}/": {"get"},
        "/api/sms/messages/bulk/": {"post"},
        "/api/sms/messages/{id}/refresh/": {"post"},
        "/api/sms/messages/{id}/cancel/": {"post"},
        "/api/sms/templates/": {"get", "post"},
        "/api/sms/templates/{id}/": {"get", "put", "patch", "delete"},
        "/api/sms/templates/{id}/render/": {"post"},
        "/api/sms/templates/{id}/send/": {"post"},
        "/api/sms/batches/": {"get"},
        "/api/sms/batches/{id}/": {"get"},
        "/api/sms/batches/{id}/cancel/": {"post"},
        "/api/sms/dlt-entities/": {"get", "post"},
        "/api/sms/dlt-entities/{id}/": {"get", "put", "patch", "delete"},
        "/api/sms/senders/": {"get", "post"},
        "/api/sms/senders/{id}/": {"get", "put", "patch", "delete"},
        "/api/sms/suppressions/": {"get", "post"},
        "/api/sms/suppressions/{id}/": {"get", "put", "patch", "delete"},
        "/api/sms/exports/messages/": {"get"},
        "/api/sms/exports/batches/{batch_id}/": {"get"},
        "/api/sms/exports/reports/{table}/": {"get"},
    }
    assert set(paths) == set(expected)
    for route, methods in expected.items():
        assert set(paths[route]) - {"parameters"} == methods, route


def _ref(schema: dict[str, Any]) -> str:
    return str(schema.get("$ref", "")).rsplit("/", 1)[-1]


def test_schema_documents_requests_responses_and_parameters(openapi) -> None:
    paths = openapi["paths"]
    components = openapi["components"]["schemas"]

    send = paths["/api/sms/messages/"]["post"]
    assert _ref(send["requestBody"]["content"]["application/json"]["schema"]) == "SendMessage"
    assert _ref(send["responses"]["201"]["content"]["application/json"]["schema"]) == (
        "SmsMessageDetail"
    )
    for route in ("/api/sms/messages/", "/api/sms/messages/bulk/", "/api/sms/templates/{id}/send/"):
        headers = [p["name"] for p in paths[route]["post"]["parameters"] if p["in"] == "header"]
        assert headers == ["Idempotency-Key"], route

    listing = paths["/api/sms/messages/"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {
        "status",
        "detailed_status_code",
        "to",
        "batch",
        "template",
        "custom_field",
        "created_after",
        "created_before",
        "cursor",
        "page_size",
    } <= names
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert _ref(page) == "PaginatedSmsMessageList"

    render = paths["/api/sms/templates/{id}/render/"]["post"]
    assert _ref(render["responses"]["200"]["content"]["application/json"]["schema"]) == (
        "TemplatePreview"
    )
    assert "502" in paths["/api/sms/messages/{id}/refresh/"]["post"]["responses"]
    assert set(components["BatchProgress"]["properties"]) == {
        "total",
        "counts",
        "final",
        "accepted",
        "percent_final",
        "done",
    }
    assert "events" in components["SmsMessageDetail"]["properties"]


def test_schema_exposes_no_internal_or_secret_field(openapi) -> None:
    import json

    text = json.dumps(openapi)
    for word in ("claim_token", "claimed_at", "request_started_at", "api_token", "API_TOKEN"):
        assert word not in text


def test_the_api_works_without_drf_spectacular(monkeypatch) -> None:
    real_import = builtins.__import__

    def no_spectacular(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "drf_spectacular" or name.startswith("drf_spectacular."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spectacular)
    try:
        fallback = importlib.reload(api_schema)
        assert fallback.HAS_SPECTACULAR is False

        def view() -> str:
            return "ok"

        assert fallback.extend_schema(summary="x")(view) is view
        assert fallback.field_schema({"type": "string"})(view) is view
        assert fallback.idempotency_parameters() == []
        assert fallback.one_of("X", []) is None
    finally:
        monkeypatch.undo()
        importlib.reload(api_schema)
    assert api_schema.HAS_SPECTACULAR is True


def test_spectacular_command_validates_without_warnings(tmp_path: Path) -> None:
    """What a project runs: ``manage.py spectacular --validate --fail-on-warn``."""
    (tmp_path / "schema_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [*INSTALLED_APPS, 'drf_spectacular']  # noqa: F405\n"
        f"REST_FRAMEWORK = {SPECTACULAR!r}\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "schema_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
    }
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(out),
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "/api/sms/messages/bulk/:" in text
    assert "sandboxtoken" not in text and "claim_token" not in text


def test_schema_documents_language_on_every_template_send(openapi) -> None:
    components = openapi["components"]["schemas"]
    for name in ("SendMessage", "BulkSend", "TemplateSend"):
        language = components[name]["properties"]["language"]
        assert language["type"] == "string", name
        assert "TEMPLATE_LANGUAGE_FALLBACK" in language["description"], name
    assert "language" in components["BulkSend"]["properties"]["messages"]["description"]
    assert "language" in components["TemplateSend"]["properties"]["recipients"]["description"]
