"""The agents API says in its OpenAPI schema what it checks, and checks what its schema says
(issue 11: the schemathesis run in tests/config/test_openapi_schemathesis.py): typed JSON
objects refuse null, typed filters refuse values that are not of their type and an empty value
is no filter, filters the schema shows are applied (the others are not shown), lists are typed
as arrays, and bodies are JSON only."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from agents.intake import source_create
from agents.models import Agent, Credential, EventSource, TaskEvent
from config.connection import connection
from governance.actors import Actor
from governance.tokens import token_issue
from tenants.models import Tenant
from tests.conftest import ALICE

from .api_support import agent_make, signed_in, task_make

SOURCE_SECRET = "s3cret-s3cret-s3cret"


@cache
def _schema() -> dict[str, Any]:
    generated = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    return dict(json.loads(OpenApiJsonRenderer().render(generated)))


def _operation(method: str, path: str) -> dict[str, Any]:
    return dict(_schema()["paths"][path][method])


def _query_parameters(method: str, path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in _operation(method, path).get("parameters", []) if p["in"] == "query"}


def _body_schema(method: str, path: str) -> dict[str, Any]:
    ref = _operation(method, path)["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return dict(_schema()["components"]["schemas"][ref.rsplit("/", 1)[1]])


def _refused(response: Any, field: str) -> None:
    """A 400 in the API's error shape that names ``field``."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"code", "detail", "extra"}
    named = set(body["extra"].get("fields", {})) | {body["extra"].get("field")}
    assert field in named, body


@pytest.fixture
def alice(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, ALICE)


def _json(client: Client, method: str, url: str, body: Any) -> Any:
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


# ------------------------------------------------------------------ JSON objects, not null
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("post", "/api/v1/agents/", "config"),
        ("post", "/api/v1/agents/", "model_settings"),
        ("patch", "/api/v1/agents/{id}/", "config"),
        ("patch", "/api/v1/agents/{id}/", "model_settings"),
        ("post", "/api/v1/agents/{id}/execute/", "input"),
    ],
)
def test_json_fields_are_typed_as_objects_that_take_no_null(method: str, path: str, field: str) -> None:
    schema = _body_schema(method, path)["properties"][field]
    assert schema["type"] == "object" and not schema.get("nullable")


def test_null_config_model_settings_or_input_is_refused_naming_the_field(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    created = _json(alice, "post", "/api/v1/agents/", {"name": "desk-2", "blueprint": "triage", "config": None})
    changed = _json(alice, "patch", "/api/v1/agents/front-desk/", {"model_settings": None})
    executed = _json(alice, "post", "/api/v1/agents/front-desk/execute/", {"input": None})

    _refused(created, "config")
    _refused(changed, "model_settings")
    _refused(executed, "input")
    assert not Agent.objects.filter(name="desk-2").exists()


def test_an_agent_name_of_digits_only_is_outside_the_schemas_pattern() -> None:
    name = _body_schema("post", "/api/v1/agents/")["properties"]["name"]
    assert name["maxLength"] == 100
    assert re.search(name["pattern"], "front-desk") and not re.search(name["pattern"], "1234")


def test_read_only_and_unknown_fields_are_refused_naming_them(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    created = _json(alice, "post", "/api/v1/agents/", {"name": "desk-2", "blueprint": "triage", "status": "paused"})
    changed = _json(alice, "patch", "/api/v1/agents/front-desk/", {"version": 7})

    _refused(created, "status")
    _refused(changed, "version")
    assert Agent.objects.get(name="front-desk").version == 1


def test_a_form_body_is_refused_with_415_and_writes_nothing(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    task = task_make(acme, agent)

    created = alice.post("/api/v1/agents/", {"name": "desk-2", "blueprint": "triage"})
    cancelled = alice.post(f"/api/v1/tasks/{task.pk}/cancel/", {"reason": "form"})

    assert (created.status_code, cancelled.status_code) == (415, 415)
    assert created.json()["code"] and set(created.json()) == {"code", "detail", "extra"}
    assert not Agent.objects.filter(name="desk-2").exists()
    task.refresh_from_db()
    assert task.state != "cancelled"


# ------------------------------------------------------------------ responses as they are
def test_blueprints_are_documented_as_the_list_they_are(alice: Client) -> None:
    schema = _operation("get", "/api/v1/agents/blueprints/")["responses"]["200"]["content"]["application/json"]
    body = alice.get("/api/v1/agents/blueprints/").json()

    assert schema["schema"]["type"] == "array"
    assert isinstance(body, list) and {"triage", "ops"} <= {b["name"] for b in body}
    assert all(isinstance(b["config_schema"], dict) and isinstance(b["tools"], list) for b in body)


def test_usage_documents_its_answer_and_dates(alice: Client) -> None:
    operation = _operation("get", "/api/v1/usage/")
    body = alice.get("/api/v1/usage/").json()

    assert _query_parameters("get", "/api/v1/usage/")["from"] == {"type": "string", "format": "date"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/UsageOut")
    assert set(body) == {"from", "to", "rows", "totals", "limits"}


@pytest.mark.parametrize(("query", "field"), [("to=", "to"), ("from=20250401", "from"), ("from=2025-W14-1", "from")])
def test_usage_refuses_a_date_that_is_not_yyyy_mm_dd(alice: Client, query: str, field: str) -> None:
    response = alice.get(f"/api/v1/usage/?{query}")
    _refused(response, field)
    assert response.json()["code"] == "invalid_period"


# ------------------------------------------------------------------------------- filters
def test_the_event_store_takes_any_integer_task_and_refuses_other_values(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    mine = alice.get(f"/api/v1/events/?task={task.pk}").json()["results"]
    nothing = alice.get("/api/v1/events/?task=0")
    unfiltered = alice.get("/api/v1/events/?task=").json()["count"]

    assert _query_parameters("get", "/api/v1/events/")["task"] == {"type": "integer"}
    assert [e["task"] for e in mine] == [task.pk]
    assert (nothing.status_code, nothing.json()["results"]) == (200, [])
    assert unfiltered == TaskEvent.objects.count()
    _refused(alice.get("/api/v1/events/?task=first"), "task")
    _refused(alice.get("/api/v1/events/?task=1.5"), "task")


def test_event_sources_filter_by_enabled_and_refuse_anything_but_a_boolean(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "pager-ops", "ops")
    actor = Actor.system("test")
    source_create(name="on", kind="generic", agent_name="pager-ops", secret=SOURCE_SECRET, actor=actor)
    source_create(name="off", kind="generic", agent_name="pager-ops", secret=SOURCE_SECRET, enabled=False, actor=actor)

    def names(query: str) -> list[str]:
        response = alice.get(f"/api/v1/event-sources/?{query}")
        assert response.status_code == 200, response.content
        return sorted(s["name"] for s in response.json()["results"])

    assert (names("enabled=true"), names("enabled=false"), names("enabled=")) == (["on"], ["off"], ["off", "on"])
    for value in ("null", "yes", "2"):
        _refused(alice.get(f"/api/v1/event-sources/?enabled={value}"), "enabled")
    assert EventSource.objects.count() == 2


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("/api/v1/agents/{id}/versions/", {"blueprint", "status", "ordering"}),
        ("/api/v1/tasks/{id}/events/", {"agent", "state", "priority", "ordering"}),
    ],
)
def test_sub_lists_show_no_filters_they_would_not_apply(path: str, ignored: set[str]) -> None:
    assert set(_query_parameters("get", path)) == {"page"}
    assert not ignored & set(_query_parameters("get", path))


def test_a_task_filter_in_the_query_does_not_hide_the_tasks_events(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    response = alice.get(f"/api/v1/tasks/{task.pk}/events/?state=cancelled&agent=nobody")
    assert response.status_code == 200, response.content
    assert [e["to_state"] for e in response.json()["results"]] == ["assigned"]


def test_versions_list_every_version_whatever_the_query(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    _json(alice, "patch", "/api/v1/agents/front-desk/", {"description": "x", "privilege_ceiling": 3})
    response = alice.get("/api/v1/agents/front-desk/versions/?status=paused&blueprint=ops")
    assert [v["version"] for v in response.json()["results"]] == [2, 1]


# ------------------------------------------------------------------------- execute's wait
@pytest.mark.parametrize("wait", ["-1", "31", "nan", "inf"])
def test_execute_refuses_a_wait_outside_0_to_30_seconds(acme: Tenant, alice: Client, wait: str) -> None:
    agent_make(acme, "front-desk")
    response = _json(alice, "post", f"/api/v1/agents/front-desk/execute/?wait={wait}", {"input": {"text": "hi"}})
    _refused(response, "wait")
    wait_schema = _query_parameters("post", "/api/v1/agents/{id}/execute/")["wait"]
    assert (wait_schema["minimum"], wait_schema["maximum"]) == (0, 30)


def test_execute_documents_the_422_of_a_reused_idempotency_key() -> None:
    responses = _operation("post", "/api/v1/agents/{id}/execute/")["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")


# ----------------------------------------------------------------------------- integrations
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Orders", "kind": "bearer", "secret": "t0ken"}, "name"),
        ({"name": "orders", "kind": "bearer", "secret": "two\nlines"}, "secret"),
        ({"name": "orders", "kind": "header", "header_name": "X Key", "secret": "t0ken"}, "header_name"),
        ({"name": "orders", "kind": "basic", "secret": "no-colon"}, "secret"),
    ],
)
def test_a_credential_that_breaks_a_rule_is_refused_naming_the_field(
    alice: Client, body: dict[str, Any], field: str
) -> None:
    _refused(_json(alice, "post", "/api/v1/integrations/credentials/", body), field)
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kinds": []}, "kinds"),
        ({"kinds": ["reply", "reply"]}, "kinds"),
        ({"kinds": ["mail"]}, "kinds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 61}, "timeout_seconds"),
        ({"signing_secret": "short"}, "signing_secret"),
        ({"name": "Replies!"}, "name"),
    ],
)
def test_an_endpoint_that_breaks_a_rule_is_refused_naming_the_field(
    alice: Client, change: dict[str, Any], field: str
) -> None:
    body = {"name": "replies", "url": "https://93.184.215.14/hooks", "kinds": ["reply"], "signing_secret": "x" * 16}
    _refused(_json(alice, "post", "/api/v1/integrations/endpoints/", {**body, **change}), field)


def test_the_endpoint_schema_states_kinds_timeout_and_secret_rules() -> None:
    properties = _body_schema("post", "/api/v1/integrations/endpoints/")["properties"]
    assert properties["kinds"]["minItems"] == 1 and properties["kinds"]["uniqueItems"] is True
    assert (properties["timeout_seconds"]["minimum"], properties["timeout_seconds"]["maximum"]) == (0.1, 60)
    assert "{16," in properties["signing_secret"]["pattern"]


def test_the_outbox_answers_nobody_without_credentials(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    token = token_issue(user=User.objects.get(username=ALICE), name="outbox").secret
    connection.set_schema_to_public()

    anonymous = acme_client.get("/api/v1/integrations/outbox/")
    wrong = acme_client.get("/api/v1/integrations/outbox/", HTTP_AUTHORIZATION="Bearer not-a-token")
    right = acme_client.get("/api/v1/integrations/outbox/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
