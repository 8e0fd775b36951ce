"""Approval policies as versioned data: validation naming the field, every change audited and
kept, the API (reads for every role, writes for admins), and what a policy decides when the
engine reaches a tool call: the gate, the deciding role, the quorum, the SLA; shadow policies
recorded without changing anything."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.models import Step, Task
from config.connection import connection
from governance.models import AuditEvent
from hitl.demo import demo_content_create
from hitl.models import ApprovalRequest, Policy, PolicyVersion
from hitl.policies import (
    PolicyForbidden,
    PolicyInvalid,
    policy_create,
    policy_update,
    policy_version_create,
    rules_from_snapshot,
    rules_in_force,
)
from tenants.models import Tenant
from tests.agents.api_support import agent_make, signed_in, task_drive, task_make
from tests.conftest import ALICE, BILLING_TICKET, CRASH_EVENT, REFUND_TICKET, RITA

from .support import refund_agent, refund_waiting

REFUNDS_ABOVE_20 = {
    "conditions": {"tools": ["issue_refund"], "arguments": [{"argument": "amount", "gt": 20}]},
    "approver_role": "admin",
    "quorum": 2,
    "priority": "critical",
    "sla_minutes": {"critical": 5},
}


@pytest.fixture(autouse=True)
def _in_acme(acme: Tenant) -> None:
    connection.set_tenant(acme)


def _alice() -> User:
    return User.objects.get(username=ALICE)


def _policy(name: str, content: dict[str, Any], **flags: Any) -> Policy:
    return policy_create(name=name, content=content, user=_alice(), **flags)


def _step_audit(task: Task, action: str) -> dict[str, Any]:
    event = AuditEvent.objects.get(verb="agent.step", target_type="task", target_id=str(task.pk), data__action=action)
    return dict(event.data)


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"quorum": 0}, "quorum"),
        ({"quorum": "2"}, "quorum"),
        ({"gate": "maybe"}, "gate"),
        ({"approver_role": "viewer"}, "approver_role"),
        ({"terminal": "auto_approve"}, "terminal"),  # may match any level: not low risk
        ({"terminal": "auto_approve", "conditions": {"privilege_max": 3}}, "terminal"),
        ({"gate": "none"}, "gate"),  # would waive the gate of admin-level tools
        ({"conditions": {"colour": "red"}}, "conditions"),
        ({"conditions": {"privilege_min": 4, "privilege_max": 2}}, "conditions.privilege_max"),
        ({"conditions": {"tiers": ["gold"]}}, "conditions.tiers"),
        ({"conditions": {"arguments": [{"argument": "amount", "above": 5}]}}, "conditions.arguments[0]"),
        ({"conditions": {"arguments": [{"argument": "amount", "gt": "5"}]}}, "conditions.arguments[0]"),
        ({"sla_minutes": {"urgent": 5}}, "sla_minutes.urgent"),
        ({"sla_minutes": {"high": 0}}, "sla_minutes.high"),
        ({"ladder": {"reminder_share": 1.5}}, "ladder.reminder_share"),
        ({"ladder": {"steps": [{"role": "boss"}]}}, "ladder.steps[0].role"),
        ({"priority": "urgent"}, "priority"),
        ({"colour": "red"}, "content"),
    ],
)
def test_an_invalid_policy_is_refused_naming_the_field_and_nothing_is_written(
    acme: Tenant, content: dict[str, Any], field: str
) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        _policy("bad", content)
    assert field in refused.value.extra["fields"], refused.value.extra
    assert field in str(refused.value)
    assert not Policy.objects.filter(name="bad").exists()
    assert not AuditEvent.objects.filter(verb="policy.created").exists()


def test_auto_approve_and_gate_none_are_accepted_within_their_risk_limits(acme: Tenant) -> None:
    low = _policy("low-risk", {"terminal": "auto_approve", "conditions": {"privilege_max": 2}})
    small = _policy(
        "small-refunds",
        {"gate": "none", "conditions": {"privilege_max": 3, "arguments": [{"argument": "amount", "lte": 10}]}},
    )
    assert low.current is not None and low.current.terminal == "auto_approve"
    assert small.current is not None and small.current.gate == "none"


# ------------------------------------------------------------------------ versions, audit
def test_every_change_is_a_new_audited_version_and_versions_are_never_edited(acme: Tenant) -> None:
    policy = _policy("refunds", REFUNDS_ABOVE_20, reason="two admins for refunds")
    first = policy.current
    assert first is not None and (first.version, first.quorum, first.created_by) == (1, 2, _alice())
    second = policy_version_create(policy_id=policy.pk, content={**REFUNDS_ABOVE_20, "quorum": 3}, user=_alice())
    policy.refresh_from_db()
    assert (second.version, policy.current) == (2, second)
    first.refresh_from_db()
    assert first.quorum == 2  # the old version is kept as it was
    with pytest.raises(ValueError, match="never edited"):
        first.save()
    policy_update(policy_id=policy.pk, enabled=False, user=_alice())
    policy_update(policy_id=policy.pk, shadow=True, order=5, user=_alice())
    events = list(AuditEvent.objects.filter(target_type="policy", target_id=str(policy.pk)).order_by("seq"))
    assert [e.verb for e in events] == ["policy.created", "policy.versioned", "policy.disabled", "policy.changed"]
    assert events[1].data["diff"] == {"quorum": [2, 3]}
    assert events[3].data["changes"] == {"shadow": [False, True], "order": [100, 5]}
    assert all(e.actor_label == ALICE for e in events)


def test_only_admins_change_policies(acme: Tenant) -> None:
    rita = User.objects.get(username=RITA)
    with pytest.raises(PolicyForbidden):
        policy_create(name="mine", content={}, user=rita)
    policy = _policy("theirs", {})
    with pytest.raises(PolicyForbidden):
        policy_version_create(policy_id=policy.pk, content={"quorum": 2}, user=rita)
    with pytest.raises(PolicyForbidden):
        policy_update(policy_id=policy.pk, enabled=False, user=rita)
    assert PolicyVersion.objects.filter(policy=policy).count() == 1


# ------------------------------------------------------------------------------------ API
def test_the_api_creates_versions_lists_and_disables_a_policy(acme: Tenant, acme_client: Client) -> None:
    admin = signed_in(acme_client, acme, ALICE)
    created = admin.post(
        "/api/v1/hitl/policies/",
        {"name": "refunds", "order": 10, "reason": "big refunds", **REFUNDS_ABOVE_20},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["current"]["version"], body["current"]["priority"]) == ("refunds", 1, "critical")
    url = f"/api/v1/hitl/policies/{body['id']}/"
    versioned = admin.post(f"{url}versions/", {**REFUNDS_ABOVE_20, "quorum": 3}, content_type="application/json")
    assert (versioned.status_code, versioned.json()["version"]) == (201, 2), versioned.content
    listed = admin.get(f"{url}versions/")
    assert [v["version"] for v in listed.json()["results"]] == [2, 1]
    # The rules change only by a new version; flags by PATCH.
    refused = admin.patch(url, {"quorum": 5}, content_type="application/json")
    assert (refused.status_code, refused.json()["code"]) == (400, "policy_invalid")
    assert refused.json()["extra"]["fields"] == {"quorum": "change it in a new version"}
    disabled = admin.patch(url, {"enabled": False}, content_type="application/json")
    assert (disabled.status_code, disabled.json()["enabled"]) == (200, False)
    invalid = admin.post(f"{url}versions/", {"quorum": 99, "colour": "red"}, content_type="application/json")
    assert (invalid.status_code, invalid.json()["code"]) == (400, "policy_invalid")
    assert invalid.json()["extra"]["fields"] == {"colour": "unknown field"}
    invalid = admin.post(f"{url}versions/", {"quorum": 99}, content_type="application/json")
    assert "quorum" in invalid.json()["extra"]["fields"]
    assert PolicyVersion.objects.filter(policy_id=body["id"]).count() == 2


def test_reviewers_read_policies_but_cannot_write_them(acme: Tenant, acme_client: Client) -> None:
    policy = _policy("refunds", REFUNDS_ABOVE_20)
    rita = signed_in(acme_client, acme, RITA)
    listed = rita.get("/api/v1/hitl/policies/")
    assert [p["name"] for p in listed.json()["results"]] == ["refunds"]
    assert rita.get(f"/api/v1/hitl/policies/{policy.pk}/versions/").status_code == 200
    created = rita.post("/api/v1/hitl/policies/", {"name": "x"}, content_type="application/json")
    assert created.status_code == 403
    versioned = rita.post(f"/api/v1/hitl/policies/{policy.pk}/versions/", {}, content_type="application/json")
    assert versioned.status_code == 403
    assert rita.patch(f"/api/v1/hitl/policies/{policy.pk}/", {"enabled": False}).status_code == 403


# ------------------------------------------------------------------------ deciding a gate
def test_the_first_matching_policy_decides_role_quorum_priority_and_sla(acme: Tenant) -> None:
    _policy("later", {"conditions": {"tools": ["issue_refund"]}, "quorum": 3}, order=50)
    first = _policy("refunds", REFUNDS_ABOVE_20, order=10)
    request = refund_waiting(acme, refund_agent(acme))  # a refund of 25 EUR
    assert first.current is not None
    assert (request.policy_version, request.quorum, request.required_role) == (first.current, 2, "admin")
    assert request.get_priority_display() == "critical"
    assert request.due_at is not None and (request.due_at - request.created_at).total_seconds() == pytest.approx(
        300, abs=5
    )
    requested = AuditEvent.objects.get(verb="approval.requested", target_id=str(request.pk))
    assert requested.data["policy"]["policy"] == "refunds" and requested.data["quorum"] == 2
    assert request.history.get(kind="opened").data["policy"]["version"] == 1


def test_a_policy_whose_conditions_do_not_match_leaves_the_built_in_rules(acme: Tenant) -> None:
    _policy(
        "big-refunds", {"conditions": {"tools": ["issue_refund"], "arguments": [{"argument": "amount", "gt": 100}]}}
    )
    _policy("other-tier", {"conditions": {"tiers": ["enterprise"]}, "quorum": 4})
    _policy("disabled", {"quorum": 5}, enabled=False)
    request = refund_waiting(acme, refund_agent(acme))
    assert (request.policy_version, request.quorum, request.required_role) == (None, 1, "reviewer")


def test_a_policy_never_lowers_the_built_in_deciding_role(acme: Tenant) -> None:
    _policy("restarts", {"conditions": {"tools": ["restart_service"]}, "approver_role": "reviewer"})
    agent = agent_make(acme, "ops", "ops", privilege_ceiling=4)
    task = task_drive(task_make(acme, agent, CRASH_EVENT), {"awaiting_approval"})
    request = ApprovalRequest.objects.get(task=task)
    assert (request.tool, request.required_role) == ("restart_service", "admin")


def test_gate_none_lets_a_small_refund_run_without_approval_audited_with_the_policy(acme: Tenant) -> None:
    policy = _policy(
        "small-refunds",
        {"gate": "none", "conditions": {"privilege_max": 3, "arguments": [{"argument": "amount", "lte": 30}]}},
    )
    task = task_drive(task_make(acme, refund_agent(acme), REFUND_TICKET), {"verified", "escalated"})
    assert not ApprovalRequest.objects.filter(task=task).exists()
    refund = Step.objects.get(task=task, action="issue_refund")
    assert refund.decision == "allow"
    audit = _step_audit(task, "issue_refund")
    assert policy.current is not None
    assert audit["policy"] == {
        "policy": "small-refunds",
        "version": 1,
        "policy_version_id": policy.current.pk,
        "gate": "none",
        "approver_role": "reviewer",
        "quorum": 1,
    }


# ---------------------------------------------------------------------------------- shadow
def test_a_shadow_policy_records_that_it_would_gate_a_reply_that_runs_ungated(acme: Tenant) -> None:
    _policy("review-replies", {"conditions": {"tools": ["send_reply"]}, "quorum": 2}, shadow=True)
    agent = agent_make(acme, "triage-shadow", "triage")
    task = task_drive(task_make(acme, agent, BILLING_TICKET), {"verified", "escalated"})
    assert not ApprovalRequest.objects.filter(task=task).exists()  # nothing blocked
    assert Step.objects.get(task=task, action="send_reply").decision == "allow"
    (shadow,) = _step_audit(task, "send_reply")["shadow"]
    assert shadow | {"policy_version_id": 0} == {
        "policy": "review-replies",
        "version": 1,
        "policy_version_id": 0,
        "gate": "approval",
        "approver_role": "reviewer",
        "quorum": 2,
        "would_block": True,
    }


def test_a_shadow_policy_on_a_gated_refund_is_recorded_on_the_request_and_changes_nothing(acme: Tenant) -> None:
    _policy(
        "strict-refunds",
        {"conditions": {"tools": ["issue_refund"]}, "approver_role": "admin", "quorum": 3},
        shadow=True,
    )
    request = refund_waiting(acme, refund_agent(acme))
    assert (request.policy_version, request.quorum, request.required_role) == (None, 1, "reviewer")
    (shadow,) = request.shadow
    assert (shadow["policy"], shadow["approver_role"], shadow["quorum"], shadow["would_block"]) == (
        "strict-refunds",
        "admin",
        3,
        False,
    )
    assert request.history.get(kind="shadow").data == {"policies": request.shadow}
    requested = AuditEvent.objects.get(verb="approval.requested", target_id=str(request.pk))
    assert requested.data["shadow"] == request.shadow


def test_a_shadow_policy_does_not_take_precedence_over_a_live_one(acme: Tenant) -> None:
    _policy("shadow-first", {"quorum": 3}, shadow=True, order=1)
    live = _policy("live", {"conditions": {"tools": ["issue_refund"]}, "quorum": 2}, order=2)
    request = refund_waiting(acme, refund_agent(acme))
    assert (request.policy_version, request.quorum) == (live.current, 2)
    assert [s["policy"] for s in request.shadow] == ["shadow-first"]


def test_the_demo_tenant_gets_a_quorum_policy_for_large_refunds_and_a_shadow_one_for_replies(acme: Tenant) -> None:
    assert demo_content_create() == ["large-refunds", "review-customer-replies"]
    large, replies = Policy.objects.filter(name__in=["large-refunds", "review-customer-replies"]).order_by("order")
    assert large.current is not None and (large.shadow, large.current.quorum, large.current.terminal) == (
        False,
        2,
        "auto_reject",
    )
    assert replies.shadow and replies.current is not None and replies.current.gate == "approval"
    assert AuditEvent.objects.filter(verb="policy.created", actor_label="demo").count() == 2


def test_the_step_snapshot_reads_the_same_rules_in_force_as_the_policies_module(acme: Tenant) -> None:
    _policy("later", {"conditions": {"tools": ["issue_refund"]}, "quorum": 2}, order=20)
    first = _policy("first", REFUNDS_ABOVE_20, order=10)
    _policy("watching", {"quorum": 3}, shadow=True, order=15)
    _policy("off", {"quorum": 2}, enabled=False, order=1)
    policy_version_create(policy_id=first.pk, content={**REFUNDS_ABOVE_20, "quorum": 3}, user=_alice())

    with connection.cursor() as cursor:
        cursor.execute("SELECT vigil_gate_rules()")
        (answered,) = cursor.fetchone()

    rows = json.loads(answered) if isinstance(answered, str) else answered
    assert rules_from_snapshot(rows) == rules_in_force()
    assert [rule.name for rule in rules_in_force()] == ["first", "watching", "later"]
    assert rules_in_force()[0].quorum == 3


def test_a_tier_condition_holds_on_a_connection_that_knows_only_the_schema(acme: Tenant) -> None:
    # A worker sets the schema alone (django-tenants' stand-in tenant has no tier).
    _policy("pro-refunds", {"conditions": {"tools": ["issue_refund"], "tiers": [acme.tier]}, "quorum": 2})
    task = task_make(acme, refund_agent(acme), REFUND_TICKET)
    connection.set_schema("acme")

    task = task_drive(task, {"awaiting_approval"})

    assert not isinstance(connection.tenant, Tenant)
    request = ApprovalRequest.objects.get(task=task)
    assert request.quorum == 2
    assert request.policy_version is not None and request.policy_version.policy.name == "pro-refunds"
