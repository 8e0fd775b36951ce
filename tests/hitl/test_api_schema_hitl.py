"""The hitl API answers as its OpenAPI schema says: the filters it documents apply (and a value
that is not of their type is a 400 naming the parameter), the filters it does not apply are not
documented, request bodies are typed as the services check them, and every body refuses fields
it does not take."""

from __future__ import annotations

import functools
import json
from typing import Any, cast

from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer

from hitl.models import ApprovalRequest, Policy
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, RITA

from .support import refund_agent, refund_waiting


@functools.cache
def _schema() -> dict[str, Any]:
    generated = SchemaGenerator(urlconf="config.urls_tenant").get_schema(request=None, public=True)
    return cast("dict[str, Any]", json.loads(OpenApiJsonRenderer().render(generated)))


def _parameters(method: str, path: str) -> dict[str, dict[str, Any]]:
    operation = _schema()["paths"][path][method]
    return {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}


def _component(name: str) -> dict[str, Any]:
    return cast("dict[str, Any]", _schema()["components"]["schemas"][name])


def _ids(client: Client, url: str) -> list[int]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def _fields(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return cast("dict[str, Any]", response.json()["extra"]["fields"])


def test_the_list_and_pending_filter_by_task_and_refuse_a_task_that_is_no_integer(
    acme: Tenant, acme_client: Client
) -> None:
    agent = refund_agent(acme)
    first, second = refund_waiting(acme, agent), refund_waiting(acme, agent)
    client = signed_in(acme_client, acme, RITA)
    for url in ("/api/v1/hitl/", "/api/v1/hitl/pending/"):
        assert _ids(client, f"{url}?task={first.task_id}") == [first.pk]
        assert _ids(client, f"{url}?task=0") == []
        assert sorted(_ids(client, f"{url}?task=")) == sorted([first.pk, second.pk])
        assert "task" in _fields(client.get(f"{url}?task=null"))
        assert "status" in _fields(client.get(f"{url}?status=null"))
        assert _parameters("get", url)["task"] == {"type": "integer"}


def test_pending_applies_the_filters_and_the_ordering_it_documents(acme: Tenant, acme_client: Client) -> None:
    agent = refund_agent(acme)
    first, second = refund_waiting(acme, agent), refund_waiting(acme, agent)
    client = signed_in(acme_client, acme, RITA)
    assert _ids(client, "/api/v1/hitl/pending/") == [first.pk, second.pk]  # oldest first
    assert _ids(client, "/api/v1/hitl/pending/?ordering=-created_at") == [second.pk, first.pk]
    assert _ids(client, "/api/v1/hitl/pending/?tool=issue_refund") == [first.pk, second.pk]
    assert _ids(client, "/api/v1/hitl/pending/?tool=send_email") == []
    assert _ids(client, "/api/v1/hitl/pending/?status=approved") == []
    assert set(_parameters("get", "/api/v1/hitl/pending/")) >= {"status", "tool", "task", "ordering"}


def test_queue_clarifications_and_versions_document_only_the_parameters_they_read() -> None:
    assert set(_parameters("get", "/api/v1/hitl/queue/")) == {"status", "priority", "agent", "assignee", "page"}
    assert set(_parameters("get", "/api/v1/hitl/clarifications/")) == {"mine", "state", "page"}
    assert set(_parameters("get", "/api/v1/hitl/policies/{id}/versions/")) == {"page"}


def test_decided_by_and_assignee_are_usernames_or_null(acme: Tenant, acme_client: Client) -> None:
    schema = _component("ApprovalOut")["properties"]
    for name in ("decided_by", "assignee"):
        assert (schema[name]["type"], schema[name]["nullable"]) == ("string", True)
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    (listed,) = client.get("/api/v1/hitl/").json()["results"]
    assert (listed["decided_by"], listed["assignee"]) == (None, None)
    rejected = client.post(f"/api/v1/hitl/{request.pk}/reject/", {"note": "no"}, content_type="application/json")
    assert (rejected.status_code, rejected.json()["decided_by"]) == (200, RITA), rejected.content


def test_bodies_refuse_fields_they_do_not_take_and_bodies_that_are_not_json(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    bodies: list[tuple[str, dict[str, Any], str]] = [
        (f"/api/v1/hitl/{request.pk}/reassign/", {"user": ALICE}, "assignee"),
        (f"/api/v1/hitl/{request.pk}/reject/", {"note": "no"}, "decided_by"),
        (f"/api/v1/hitl/{request.pk}/respond/", {"verdict": "reject", "reason": "no"}, "status"),
        (f"/api/v1/hitl/{request.pk}/clarify/", {"question": "why?"}, "asked_by"),
        ("/api/v1/hitl/escalate/", {"approval": request.pk, "reason": "urgent"}, "priority"),
    ]
    for url, body, extra in bodies:
        response = client.post(url, {**body, extra: RITA}, content_type="application/json")
        assert _fields(response) == {extra: ["unknown field"]}, url
    form = client.post("/api/v1/hitl/escalate/", {"approval": request.pk, "reason": "urgent"})
    assert form.status_code == 415
    request.refresh_from_db()
    assert (request.status, request.escalation_level, request.decided_by) == ("pending", 0, None)


def test_escalate_names_exactly_one_request_and_a_tier_of_the_ladder(acme: Tenant, acme_client: Client) -> None:
    body = _component("EscalateInRequest")
    assert body["oneOf"] == [{"required": ["approval"]}, {"required": ["task"]}]
    assert _component("ApproverRoleEnum")["enum"] == ["reviewer", "admin"]
    response = _schema()["paths"]["/api/v1/hitl/escalate/"]["post"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApprovalDetailOut"}
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    unknown = client.post(
        "/api/v1/hitl/escalate/",
        {"approval": request.pk, "reason": "urgent", "target": "ceo"},
        content_type="application/json",
    )
    assert "target" in _fields(unknown)
    escalated = client.post(
        "/api/v1/hitl/escalate/", {"approval": request.pk, "reason": "urgent"}, content_type="application/json"
    )
    assert (escalated.status_code, escalated.json()["escalation_level"]) == (200, 1), escalated.content


def test_approve_documents_the_action_hash_as_required() -> None:
    assert "action_hash" in _component("ApproveInRequest")["required"]
    assert "action_hash" not in _component("DecisionInRequest").get("required", [])
    operation = _schema()["paths"]["/api/v1/hitl/{id}/approve/"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ApproveInRequest")


def test_policy_bodies_are_typed_as_the_service_checks_them(acme: Tenant, acme_client: Client) -> None:
    content = _component("ContentInRequest")["properties"]
    assert (content["conditions"]["type"], content["sla_minutes"]["type"], content["ladder"]["type"]) == (
        "object",
        "object",
        "object",
    )
    assert (content["quorum"]["type"], content["quorum"]["minimum"], content["quorum"]["maximum"]) == (
        "integer",
        1,
        10,
    )
    assert not any(content[name].get("nullable") for name in ("conditions", "quorum", "sla_minutes", "ladder"))
    assert content["priority"]["nullable"] is True
    assert _component("GateEnum")["enum"] == ["none", "approval"]
    assert _component("TerminalEnum")["enum"] == ["expire", "auto_reject", "auto_approve"]
    assert _component("PriorityNameEnum")["enum"] == ["low", "medium", "high", "critical"]
    assert _component("PolicyInRequest")["properties"]["order"]["maximum"] == 1_000_000

    admin = signed_in(acme_client, acme, ALICE)
    nulls = admin.post(
        "/api/v1/hitl/policies/",
        {"name": "refunds", "conditions": None, "quorum": None, "sla_minutes": None, "ladder": None},
        content_type="application/json",
    )
    assert set(_fields(nulls)) == {"conditions", "quorum", "sla_minutes", "ladder"}
    for bad in ({"gate": "maybe"}, {"approver_role": "owner"}, {"priority": "urgent"}, {"terminal": "forget"}):
        fields = _fields(
            admin.post("/api/v1/hitl/policies/", {"name": "refunds", **bad}, content_type="application/json")
        )
        assert set(fields) == set(bad)
    nul = admin.post(
        "/api/v1/hitl/policies/",
        {"name": "refunds", "conditions": {"tools": ["a\x00b"]}},
        content_type="application/json",
    )
    assert set(_fields(nul)) == {"conditions"}
    named = admin.post("/api/v1/hitl/policies/", {"name": "big refunds"}, content_type="application/json")
    assert set(_fields(named)) == {"name"}
    created = admin.post(
        "/api/v1/hitl/policies/", {"name": "refunds", "priority": None}, content_type="application/json"
    )
    assert (created.status_code, created.json()["current"]["priority"]) == (201, None), created.content
    url = f"/api/v1/hitl/policies/{created.json()['id']}/"
    assert set(_fields(admin.patch(url, {"order": 1_000_001}, content_type="application/json"))) == {"order"}
    assert set(_fields(admin.patch(url, {"id": 7}, content_type="application/json"))) == {"id"}
    version = admin.post(f"{url}versions/", {"quorum": 2, "gate": "approval"}, content_type="application/json")
    assert (version.status_code, version.json()["quorum"]) == (201, 2), version.content
    assert Policy.objects.get(name="refunds").current.version == 2  # type: ignore[union-attr]
    assert not ApprovalRequest.objects.exists()


def test_approval_and_policy_addresses_are_numeric_ids(acme: Tenant, acme_client: Client) -> None:
    assert _schema()["paths"]["/api/v1/hitl/{id}/reject/"]["post"]["parameters"][0]["schema"]["pattern"] == "^[0-9]+$"
    client = signed_in(acme_client, acme, ALICE)
    # "policies" is no approval's id: the address is no operation's, not a policy's refused method.
    missing = client.post("/api/v1/hitl/policies/reject/", {}, content_type="application/json")
    assert missing.status_code == 404
    assert client.get("/api/v1/hitl/99999999999999999999/").status_code == 404
    assert client.get("/api/v1/hitl/policies/99999999999999999999/versions/").status_code == 404


def test_bodies_take_each_value_in_its_json_type_only(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    admin = signed_in(acme_client, acme, ALICE)
    policy = admin.post("/api/v1/hitl/policies/", {"name": "refunds"}, content_type="application/json")
    assert policy.status_code == 201, policy.content
    url = f"/api/v1/hitl/policies/{policy.json()['id']}/"
    for body, field in (
        ({"enabled": 0}, "enabled"),
        ({"shadow": "yes"}, "shadow"),
        ({"order": "5"}, "order"),
        ({"description": 5}, "description"),
    ):
        assert set(_fields(admin.patch(url, body, content_type="application/json"))) == {field}
    escalate = {"approval": str(request.pk), "reason": "urgent"}
    assert set(_fields(admin.post("/api/v1/hitl/escalate/", escalate, content_type="application/json"))) == {"approval"}
    blank = admin.post(f"/api/v1/hitl/{request.pk}/clarify/", {"question": " \t "}, content_type="application/json")
    assert set(_fields(blank)) == {"question"}
    assert "pattern" in _component("ClarifyInRequest")["properties"]["question"]
    assert "tool" in _fields(admin.get("/api/v1/hitl/?tool=a%00b"))
    assert _parameters("get", "/api/v1/hitl/")["tool"]["pattern"] == "^[^\\x00]*$"
    patched = admin.patch(url, {"enabled": False, "order": 5}, content_type="application/json")
    assert (patched.status_code, patched.json()["enabled"], patched.json()["order"]) == (200, False, 5)
