"""Deciding through POST /api/v1/hitl/{id}/respond/: approve, reject with a reason, edit the
arguments (validated, rebound to a new hash, run exactly as edited); final; four eyes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.models import OutboxMessage, Task
from agents.services import task_submit
from governance.models import AuditEvent
from hitl.binding import action_hash
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import signed_in, task_drive
from tests.conftest import REFUND_ARGUMENTS, REFUND_TICKET, RITA

from .support import profile, refund_agent, refund_waiting, reviewer


@pytest.fixture
def refund(acme: Tenant) -> ApprovalRequest:
    return refund_waiting(acme, refund_agent(acme))


@pytest.fixture
def rita(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, RITA)


def _respond(client: Client, approval: ApprovalRequest, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/hitl/{approval.pk}/respond/", body, content_type="application/json")


def test_an_assigned_reviewer_approves_and_gets_the_slot_back(acme: Tenant, acme_client: Client) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    assert request.assignee == ann
    client = signed_in(acme_client, acme, ann.username)
    response = _respond(client, request, {"verdict": "approve", "action_hash": request.action_hash})
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["decided_by"]) == ("approved", ann.username)
    assert profile(ann).open_count == 0
    decision = request.history.get(kind="approved")
    assert decision.data["verdict"] == "approve" and decision.data["assignee"] == ann.username
    assert decision.data["seconds_to_decide"] >= 0
    assert Task.objects.get(pk=request.task_id).state == "in_progress"


def test_rejecting_needs_a_reason(refund: ApprovalRequest, rita: Client) -> None:
    response = _respond(rita, refund, {"verdict": "reject"})
    assert (response.status_code, response.json()["code"]) == (400, "approval_reason_required")
    refund.refresh_from_db()
    assert refund.status == "pending"
    response = _respond(rita, refund, {"verdict": "reject", "reason": "no photos of the damage"})
    assert response.status_code == 200
    refund.refresh_from_db()
    assert (refund.status, refund.decision_note) == ("rejected", "no photos of the damage")
    assert refund.history.get(kind="rejected").data["reason"] == "no photos of the damage"


def test_edited_arguments_that_fail_the_tools_schema_are_refused(refund: ApprovalRequest, rita: Client) -> None:
    edited = {**REFUND_ARGUMENTS, "currency": "DOGE"}
    response = _respond(rita, refund, {"verdict": "edit", "action_hash": refund.action_hash, "arguments": edited})
    assert (response.status_code, response.json()["code"]) == (422, "approval_edit_invalid")
    assert "currency" in response.json()["extra"]["fields"]
    refund.refresh_from_db()
    assert (refund.status, refund.arguments) == ("pending", REFUND_ARGUMENTS)


def test_an_edited_refund_runs_exactly_as_edited_and_the_audit_holds_both_hashes(
    acme: Tenant, refund: ApprovalRequest, rita: Client
) -> None:
    edited = {**REFUND_ARGUMENTS, "amount": 20.0}
    proposed_hash = refund.action_hash
    response = _respond(
        rita, refund, {"verdict": "edit", "action_hash": proposed_hash, "arguments": edited, "reason": "partial"}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    new_hash = action_hash(tool="issue_refund", arguments=edited, schema="acme")
    assert (body["status"], body["arguments"], body["action_hash"]) == ("edited", edited, new_hash)
    assert (body["original_arguments"], body["original_hash"]) == (REFUND_ARGUMENTS, proposed_hash)
    event = AuditEvent.objects.get(verb="approval.edited", target_id=str(refund.pk))
    assert (event.data["action_hash"], event.data["original_hash"]) == (new_hash, proposed_hash)
    assert refund.history.get(kind="edited").data["edit_diff"] == {"amount": [25.0, 20.0]}
    task = task_drive(Task.objects.get(pk=refund.task_id), {"verified", "escalated", "completed"})
    assert task.state == "verified"
    (sent,) = OutboxMessage.objects.filter(effect__task=task, kind="refund")
    assert sent.payload == edited


def test_a_second_response_is_refused_with_409(refund: ApprovalRequest, rita: Client) -> None:
    assert _respond(rita, refund, {"verdict": "approve", "action_hash": refund.action_hash}).status_code == 200
    again = _respond(rita, refund, {"verdict": "reject", "reason": "changed my mind"})
    assert (again.status_code, again.json()["code"]) == (409, "approval_already_decided")


def test_the_requester_cannot_approve_their_own_task(acme: Tenant, acme_client: Client) -> None:
    agent = refund_agent(acme)
    asker = User.objects.get(username=RITA)
    task = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=asker), {"awaiting_approval"})
    request = ApprovalRequest.objects.get(task=task)
    client = signed_in(acme_client, acme, RITA)
    response = _respond(client, request, {"verdict": "approve", "action_hash": request.action_hash})
    assert (response.status_code, response.json()["extra"]["rule"]) == (403, "requester")


def test_a_viewer_cannot_respond(acme: Tenant, refund: ApprovalRequest, acme_client: Client) -> None:
    reviewer(acme, "vic@acme.example", role="viewer")
    client = signed_in(acme_client, acme, "vic@acme.example")
    response = _respond(client, refund, {"verdict": "approve", "action_hash": refund.action_hash})
    assert response.status_code == 403
    refund.refresh_from_db()
    assert refund.status == "pending"
