"""Every API error is {"code", "detail", "extra"} JSON, whoever answers it: a view, the URL
resolver, the tenant lookup, the body limit or a server error. Pages outside /api/ keep
Django's own responses."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.conf import LazySettings
from django.core.asgi import get_asgi_application
from django.test import Client

from agents.models import Agent
from agents.services import agent_create
from config.connection import connection
from tenants.models import Tenant, TenantStatus
from tests.conftest import PASSWORD

ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.fixture
def alice(acme: Tenant) -> Client:
    client = Client(HTTP_HOST="acme.localhost", raise_request_exception=False)
    connection.set_tenant(acme)
    assert client.login(username="alice@acme.example", password=PASSWORD)
    return client


def assert_error_shape(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "detail", "extra"}
    assert body["code"] == code and body["detail"]
    return body


def test_an_agent_id_written_with_a_superscript_digit_is_not_found(alice: Client) -> None:
    assert_error_shape(alice.get("/api/v1/agents/%C2%B2/"), 404, "not_found")


def test_an_approval_id_written_with_a_superscript_digit_is_not_found(alice: Client) -> None:
    response = alice.post("/api/v1/hitl/%C2%B2/approve/", {}, content_type="application/json")
    assert_error_shape(response, 404, "not_found")


def test_arabic_indic_digits_do_not_address_the_agent_with_that_id(acme: Tenant, alice: Client) -> None:
    connection.set_tenant(acme)
    agent = agent_create(name="front-desk", blueprint="triage")
    assert alice.get(f"/api/v1/agents/{agent.pk}/").json()["id"] == agent.pk
    response = alice.get(f"/api/v1/agents/{str(agent.pk).translate(ARABIC_INDIC_DIGITS)}/")
    assert_error_shape(response, 404, "not_found")


def test_an_id_that_is_neither_digits_nor_a_slug_is_not_found(alice: Client) -> None:
    assert_error_shape(alice.get("/api/v1/tasks/1%20OR%201/"), 404, "not_found")


def test_an_unknown_api_url_is_not_found(alice: Client) -> None:
    assert_error_shape(alice.get("/api/v1/no-such-thing/"), 404, "not_found")


def test_an_api_path_on_an_unknown_host_is_not_found(db: None) -> None:
    response = Client(HTTP_HOST="nobody.localhost").get("/api/v1/agents/")
    assert_error_shape(response, 404, "not_found")


def test_a_method_the_endpoint_does_not_allow_is_405(alice: Client) -> None:
    assert_error_shape(alice.delete("/api/v1/agents/"), 405, "method_not_allowed")


def test_a_suspended_tenants_api_answers_403(acme: Tenant, alice: Client) -> None:
    connection.set_schema_to_public()
    Tenant.objects.filter(pk=acme.pk).update(status=TenantStatus.SUSPENDED)
    body = assert_error_shape(alice.get("/api/v1/agents/"), 403, "tenant_suspended")
    assert "suspended" in body["detail"]


def test_a_body_over_the_limit_is_refused_with_413_and_nothing_is_created(
    acme: Tenant, alice: Client, settings: LazySettings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = alice.post(
        "/api/v1/agents/",
        {"name": "big", "blueprint": "triage", "description": "x" * 1200},
        content_type="application/json",
    )
    body = assert_error_shape(response, 413, "request_too_large")
    assert "1000 bytes" in body["detail"]
    connection.set_tenant(acme)
    assert not Agent.objects.filter(name="big").exists()


def test_a_body_at_the_limit_is_read(acme: Tenant, alice: Client, settings: LazySettings) -> None:
    payload = '{"name": "small", "blueprint": "triage", "description": "%s"}'
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(payload % ("x" * 900))
    response = alice.post("/api/v1/agents/", payload % ("x" * 900), content_type="application/json")
    assert response.status_code == 201, response.content
    connection.set_tenant(acme)
    assert Agent.objects.get(name="small").description == "x" * 900


def test_a_chunked_body_over_the_limit_is_refused_with_413(settings: LazySettings) -> None:
    """Under ASGI a chunked body declares no length; its size is checked once received."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/agents/",
        "raw_path": b"/api/v1/agents/",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"acme.localhost"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def exchange() -> tuple[dict[str, Any], bytes]:
        communicator = ApplicationCommunicator(get_asgi_application(), scope)
        await communicator.send_input({"type": "http.request", "body": b"x" * 800, "more_body": True})
        await communicator.send_input({"type": "http.request", "body": b"x" * 800, "more_body": False})
        start = await communicator.receive_output(timeout=10)
        body = await communicator.receive_output(timeout=10)
        return start, body["body"]

    start, body = async_to_sync(exchange)()
    assert start["status"] == 413
    assert dict(start["headers"])[b"Content-Type"] == b"application/json"
    assert b'"code": "request_too_large"' in body


def test_a_content_length_that_is_not_a_number_is_a_bad_request(alice: Client) -> None:
    response = alice.generic(
        "POST", "/api/v1/agents/", b"{}", content_type="application/json", CONTENT_LENGTH="12 bytes"
    )
    assert_error_shape(response, 400, "bad_request")


@pytest.mark.urls("tests.config.urls_broken")
def test_a_server_error_on_an_api_path_is_json(alice: Client) -> None:
    body = assert_error_shape(alice.get("/api/v1/broken/"), 500, "server_error")
    assert "always fails" not in body["detail"]


@pytest.mark.urls("tests.config.urls_broken")
@pytest.mark.parametrize("path", ["/api/v1/database-gone/", "/api/v1/database-gone-in-drf/"])
def test_a_view_that_loses_the_database_answers_503_with_retry_after(alice: Client, path: str) -> None:
    response = alice.get(path)
    assert_error_shape(response, 503, "database_unavailable")
    assert response["Retry-After"] == "5"


@pytest.mark.urls("tests.config.urls_broken")
def test_a_page_that_loses_the_database_answers_a_plain_503(alice: Client) -> None:
    response = alice.get("/database-gone/")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert response["Retry-After"] == "5"
    assert b"database is unavailable" in response.content


@pytest.mark.urls("tests.config.urls_broken")
def test_a_server_error_on_a_page_keeps_djangos_html(alice: Client) -> None:
    response = alice.get("/broken/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


def test_an_unknown_page_outside_the_api_keeps_djangos_html_404(alice: Client) -> None:
    response = alice.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
