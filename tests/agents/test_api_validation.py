"""Bad input is refused with 400 (or 404) and field errors, and nothing is written.

Every refusal has the shape {"code", "detail", "extra"}; input errors carry
{"extra": {"fields": {field: message(s)}}}.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Max
from django.test import Client

from agents.models import Agent, AgentConfigVersion, Task, TaskEvent
from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET

from .api_support import agent_make, signed_in


def _stored() -> tuple[int, int, int, int, int | None]:
    """Counts of what an API call could write in acme, and the audit chain's head."""
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    return (
        Agent.objects.count(),
        AgentConfigVersion.objects.count(),
        Task.objects.count(),
        TaskEvent.objects.count(),
        AuditEvent.objects.aggregate(head=Max("seq"))["head"],
    )


@pytest.fixture
def alice(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, ALICE)


def _create(client: Client, body: Any) -> Any:
    return client.post("/api/v1/agents/", body, content_type="application/json")


def _fields(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"code", "detail", "extra"}
    return dict(body["extra"]["fields"])


def test_an_unknown_blueprint_is_refused_with_a_blueprint_field_error(alice: Client) -> None:
    before = _stored()
    response = _create(alice, {"name": "ghost", "blueprint": "oracle"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(_fields(response)) == ["blueprint"]
    assert _stored() == before


def test_a_config_value_of_the_wrong_type_is_refused_at_its_path(alice: Client) -> None:
    before = _stored()
    response = _create(alice, {"name": "front-desk", "blueprint": "triage", "config": {"confidence_threshold": "high"}})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_config"
    assert _fields(response) == {"config.confidence_threshold": "'high' is not of type 'number'"}
    assert _stored() == before


def test_an_unknown_config_key_is_refused(alice: Client) -> None:
    before = _stored()
    response = _create(alice, {"name": "front-desk", "blueprint": "triage", "config": {"temperature": 0.2}})
    assert response.status_code == 400
    fields = _fields(response)
    assert list(fields) == ["config"] and "temperature" in fields["config"]
    assert _stored() == before


def test_model_settings_with_an_unknown_provider_are_refused(alice: Client) -> None:
    before = _stored()
    response = _create(
        alice, {"name": "front-desk", "blueprint": "triage", "model_settings": {"provider": "anthropic", "model": "x"}}
    )
    assert response.status_code == 400
    fields = _fields(response)
    assert list(fields) == ["model_settings.provider"] and "anthropic" in fields["model_settings.provider"]
    assert _stored() == before


def test_a_privilege_ceiling_of_9_is_refused(alice: Client) -> None:
    before = _stored()
    response = _create(alice, {"name": "front-desk", "blueprint": "triage", "privilege_ceiling": 9})
    assert response.status_code == 400
    assert list(_fields(response)) == ["privilege_ceiling"]
    assert _stored() == before


def test_a_body_that_is_not_json_is_refused_as_a_parse_error(alice: Client) -> None:
    before = _stored()
    response = _create(alice, '{"name": "front-desk", "blueprint": ')
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "detail", "extra"}
    assert body["code"] == "parse_error" and "JSON parse error" in body["detail"]
    assert _stored() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ["front-desk"], "blueprint": "triage"}, "name"),
        ({"name": "front desk!", "blueprint": "triage"}, "name"),
        ({"name": "front-desk", "blueprint": "triage", "tools": "send_reply"}, "tools"),
        ({"name": "front-desk", "blueprint": "triage", "automation_level": 3}, "automation_level"),
        ({"name": "front-desk", "blueprint": "triage", "privilege_ceiling": "high"}, "privilege_ceiling"),
        ({"name": "front-desk", "blueprint": "triage", "config": [0.5]}, "config"),
        ({"name": "front-desk", "blueprint": "triage", "model_settings": "offline"}, "model_settings"),
    ],
)
def test_fields_of_the_wrong_type_are_refused_field_by_field(alice: Client, body: dict[str, Any], field: str) -> None:
    before = _stored()
    response = _create(alice, body)
    assert response.status_code == 400
    assert list(_fields(response)) == [field]
    assert _stored() == before


def test_a_second_agent_with_the_same_name_is_refused(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    before = _stored()
    response = _create(alice, {"name": "front-desk", "blueprint": "ops"})
    assert response.status_code == 409
    assert response.json()["code"] == "name_taken"
    assert _fields(response) == {"name": "already in use"}
    assert _stored() == before
    assert Agent.objects.get(name="front-desk").blueprint == "triage"


def test_an_all_digit_agent_name_is_refused_because_the_url_would_read_it_as_an_id(acme: Tenant, alice: Client) -> None:
    existing = agent_make(acme, "front-desk")
    before = _stored()
    response = _create(alice, {"name": str(existing.pk), "blueprint": "ops"})
    assert response.status_code == 400
    assert list(_fields(response)) == ["name"]
    assert _stored() == before
    assert alice.get(f"/api/v1/agents/{existing.pk}/").json()["name"] == "front-desk"


def test_execute_with_input_missing_text_is_refused_with_input_text_and_no_task(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    before = _stored()
    response = alice.post(
        "/api/v1/agents/front-desk/execute/", {"input": {"subject": "hello"}}, content_type="application/json"
    )
    assert response.status_code == 400
    assert _fields(response) == {"input.text": "this field is required"}
    assert _stored() == before
    assert not Task.objects.exists()


def test_execute_with_a_wait_that_is_not_a_number_is_refused(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    before = _stored()
    response = alice.post(
        "/api/v1/agents/front-desk/execute/?wait=soon", {"input": BILLING_TICKET}, content_type="application/json"
    )
    assert response.status_code == 400
    assert list(_fields(response)) == ["wait"]
    assert _stored() == before


@pytest.mark.parametrize("key", ["no-such-agent", "999999"])
def test_an_unknown_agent_is_404(alice: Client, key: str) -> None:
    response = alice.get(f"/api/v1/agents/{key}/")
    assert response.status_code == 404
    assert response.json()["code"] == "agent_not_found"


def test_executing_an_unknown_agent_is_404_and_creates_no_task(alice: Client) -> None:
    before = _stored()
    response = alice.post(
        "/api/v1/agents/no-such-agent/execute/", {"input": BILLING_TICKET}, content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "agent_not_found"
    assert _stored() == before


def test_patching_an_invalid_config_is_refused_and_the_version_is_unchanged(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk", config={"confidence_threshold": 0.6})
    before = _stored()
    response = alice.patch(
        "/api/v1/agents/front-desk/", {"config": {"confidence_threshold": 7}}, content_type="application/json"
    )
    assert response.status_code == 400
    assert list(_fields(response)) == ["config.confidence_threshold"]
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (1, {"confidence_threshold": 0.6})
    assert _stored() == before


def test_an_unknown_task_is_404(alice: Client) -> None:
    response = alice.get("/api/v1/tasks/999999/")
    assert response.status_code == 404
    assert set(response.json()) == {"code", "detail", "extra"}
    assert response.json()["code"] == "not_found"


def test_patching_fields_that_cannot_change_is_refused_by_name_and_changes_nothing(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "fixed-desk", config={"confidence_threshold": 0.6})
    before = _stored()
    response = alice.patch(
        "/api/v1/agents/fixed-desk/", {"blueprint": "ops", "name": "x", "tools": []}, content_type="application/json"
    )
    assert response.status_code == 400
    assert sorted(_fields(response)) == ["blueprint", "name", "tools"]
    agent.refresh_from_db()
    assert (agent.blueprint, agent.name, agent.version) == ("triage", "fixed-desk", 1)
    assert _stored() == before
