"""Agents through the API: create, read, list, change (versioned), roll back, tools, pause."""

from __future__ import annotations

from typing import Any

from django.test import Client

from agents.blueprints import BLUEPRINTS
from agents.models import Agent, AgentConfigVersion, Task
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET

from .api_support import agent_make, audit_verbs, signed_in


def _create(client: Client, **fields: Any) -> Any:
    return client.post("/api/v1/agents/", {"blueprint": "triage", **fields}, content_type="application/json")


def _config_change(client: Client, agent: str, config: dict[str, Any], reason: str = "") -> Any:
    return client.patch(
        f"/api/v1/agents/{agent}/", {"config": config, "reason": reason}, content_type="application/json"
    )


def test_creating_an_agent_returns_201_records_version_1_and_grants_the_blueprints_tools(
    acme: Tenant, acme_client: Client
) -> None:
    response = _create(
        signed_in(acme_client, acme, ALICE),
        name="front-desk",
        description="first line",
        config={"confidence_threshold": 0.8},
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["blueprint"], body["version"], body["status"]) == ("front-desk", "triage", 1, "enabled")
    assert body["config"] == {"confidence_threshold": 0.8}
    assert body["model_settings"] == {"provider": "offline"}
    assert (body["privilege_ceiling"], body["automation_level"]) == (2, "semi_auto")
    assert sorted(body["tools"]) == sorted(BLUEPRINTS["triage"].tools)
    agent = Agent.objects.get(name="front-desk")
    assert agent.pk == body["id"] and agent.description == "first line"
    assert sorted(agent.tools.values_list("name", flat=True)) == sorted(BLUEPRINTS["triage"].tools)
    (version,) = AgentConfigVersion.objects.filter(agent=agent)
    assert version.author is not None
    assert (version.version, version.config, version.author.username, version.author_label, version.reason) == (
        1,
        {"confidence_threshold": 0.8},
        ALICE,
        ALICE,
        "created",
    )


def test_creating_an_agent_is_audited_as_agent_created_by_the_user(acme: Tenant, acme_client: Client) -> None:
    body = _create(signed_in(acme_client, acme, ALICE), name="front-desk").json()
    event = AuditEvent.objects.get(verb="agent.created", target_type="agent", target_id=str(body["id"]))
    assert (event.actor_type, event.actor_label) == ("user", ALICE)
    assert event.data["name"] == "front-desk" and event.data["blueprint"] == "triage"
    assert sorted(event.data["tools"]) == sorted(BLUEPRINTS["triage"].tools)


def test_creating_an_agent_with_explicit_tools_grants_only_those(acme: Tenant, acme_client: Client) -> None:
    response = _create(signed_in(acme_client, acme, ALICE), name="quiet", tools=["escalate_to_human"])
    assert response.status_code == 201
    assert response.json()["tools"] == ["escalate_to_human"]
    assert list(Agent.objects.get(name="quiet").tools.values_list("name", flat=True)) == ["escalate_to_human"]


def test_an_agent_is_retrieved_by_id_and_by_name(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    client = signed_in(acme_client, acme, ALICE)
    by_id = client.get(f"/api/v1/agents/{agent.pk}/")
    by_name = client.get("/api/v1/agents/front-desk/")
    assert by_id.status_code == by_name.status_code == 200
    assert by_id.json() == by_name.json()
    assert by_id.json()["id"] == agent.pk and by_id.json()["name"] == "front-desk"


def test_agent_list_is_paginated_by_fifty(acme: Tenant, acme_client: Client) -> None:
    acme.limit_overrides = {"max_agents": 100}  # a starter tenant may have 10 (rolled back with the test)
    acme.save(update_fields=["limit_overrides"])
    for i in range(52):
        agent_make(acme, f"agent-{i:02d}")
    client = signed_in(acme_client, acme, ALICE)
    first = client.get("/api/v1/agents/").json()
    assert first["count"] == 52 == Agent.objects.count()
    assert len(first["results"]) == 50 and first["previous"] is None
    assert [a["name"] for a in first["results"]][:2] == ["agent-00", "agent-01"]
    second = client.get(first["next"]).json()
    assert [a["name"] for a in second["results"]] == ["agent-50", "agent-51"]
    assert second["next"] is None


def test_agent_list_filters_by_blueprint(acme: Tenant, acme_client: Client) -> None:
    agent_make(acme, "front-desk", "triage")
    agent_make(acme, "refunds", "resolution")
    agent_make(acme, "pager", "ops")
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/agents/?blueprint=resolution")
    assert response.status_code == 200
    assert [a["name"] for a in response.json()["results"]] == ["refunds"]
    assert response.json()["count"] == Agent.objects.filter(blueprint="resolution").count() == 1


def test_changing_the_config_records_version_2_with_its_diff_and_reason(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk", config={"confidence_threshold": 0.6})
    response = _config_change(
        signed_in(acme_client, acme, ALICE),
        "front-desk",
        {"confidence_threshold": 0.9, "auto_reply": False},
        reason="too many wrong replies",
    )
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["config"] == {"confidence_threshold": 0.9, "auto_reply": False}
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (2, {"confidence_threshold": 0.9, "auto_reply": False})
    v2 = agent.versions.get(version=2)
    assert v2.reason == "too many wrong replies" and v2.author_label == ALICE
    assert v2.diff == {
        "config": {"from": {"confidence_threshold": 0.6}, "to": {"confidence_threshold": 0.9, "auto_reply": False}}
    }
    assert audit_verbs(acme, "agent", agent.pk) == ["agent.created", "agent.config_changed"]


def test_version_history_lists_every_version_newest_first(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    client = signed_in(acme_client, acme, ALICE)
    _config_change(client, "front-desk", {"confidence_threshold": 0.7}, reason="tune")
    response = client.get(f"/api/v1/agents/{agent.pk}/versions/")
    assert response.status_code == 200
    versions = response.json()["results"]
    assert [(v["version"], v["reason"], v["config"]) for v in versions] == [
        (2, "tune", {"confidence_threshold": 0.7}),
        (1, "created", {}),
    ]
    assert response.json()["count"] == AgentConfigVersion.objects.filter(agent=agent).count() == 2


def test_rolling_back_to_version_1_records_version_3_with_version_1s_config(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk", config={"confidence_threshold": 0.6})
    client = signed_in(acme_client, acme, ALICE)
    _config_change(client, "front-desk", {"confidence_threshold": 0.95})
    response = client.post(
        "/api/v1/agents/front-desk/rollback/",
        {"version": 1, "reason": "v2 escalated everything"},
        content_type="application/json",
    )
    assert response.status_code == 200
    assert (response.json()["version"], response.json()["config"]) == (3, {"confidence_threshold": 0.6})
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (3, {"confidence_threshold": 0.6})
    v3 = agent.versions.get(version=3)
    assert v3.config == agent.versions.get(version=1).config and v3.reason == "v2 escalated everything"
    assert v3.diff == {"config": {"from": {"confidence_threshold": 0.95}, "to": {"confidence_threshold": 0.6}}}


def test_rolling_back_to_a_version_that_does_not_exist_is_refused_with_400(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    response = signed_in(acme_client, acme, ALICE).post(
        "/api/v1/agents/front-desk/rollback/", {"version": 7}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"version": "no such version"}
    agent.refresh_from_db()
    assert agent.version == 1 and agent.versions.count() == 1


def test_putting_tools_replaces_the_agents_grants_and_is_audited(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "refunds", "resolution")
    response = signed_in(acme_client, acme, ALICE).put(
        "/api/v1/agents/refunds/tools/", {"tools": ["send_reply", "lookup_order"]}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["tools"] == ["lookup_order", "send_reply"]
    assert sorted(agent.tools.values_list("name", flat=True)) == ["lookup_order", "send_reply"]
    event = AuditEvent.objects.filter(verb="agent.tools_changed", target_id=str(agent.pk)).get()
    assert event.data == {
        "from": ["escalate_to_human", "issue_refund", "send_reply"],
        "to": ["lookup_order", "send_reply"],
    }


def test_putting_an_unknown_tool_is_refused_and_keeps_the_grants(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    response = signed_in(acme_client, acme, ALICE).put(
        "/api/v1/agents/front-desk/tools/", {"tools": ["send_reply", "launch_rockets"]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"tools": "unknown: launch_rockets"}
    assert sorted(agent.tools.values_list("name", flat=True)) == sorted(BLUEPRINTS["triage"].tools)


def test_pausing_an_agent_stores_paused_and_refuses_new_tasks_with_409(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    client = signed_in(acme_client, acme, ALICE)
    response = client.post("/api/v1/agents/front-desk/pause/")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    agent.refresh_from_db()
    assert agent.status == "paused"
    refused = client.post(
        "/api/v1/agents/front-desk/execute/", {"input": BILLING_TICKET}, content_type="application/json"
    )
    assert refused.status_code == 409 and refused.json()["code"] == "agent_unavailable"
    assert not Task.objects.filter(agent=agent).exists()
    assert audit_verbs(acme, "agent", agent.pk)[-1] == "agent.paused"


def test_resuming_a_paused_agent_enables_it_again(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "front-desk")
    client = signed_in(acme_client, acme, ALICE)
    client.post("/api/v1/agents/front-desk/pause/")
    response = client.post("/api/v1/agents/front-desk/resume/")
    assert response.status_code == 200 and response.json()["status"] == "enabled"
    agent.refresh_from_db()
    assert agent.status == "enabled"
    assert audit_verbs(acme, "agent", agent.pk)[-2:] == ["agent.paused", "agent.enabled"]
