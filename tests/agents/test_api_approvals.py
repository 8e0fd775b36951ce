"""Approval requests through the API (/api/v1/hitl/). Tasks reach awaiting_approval without a
worker: the engine is advanced in this process inside acme's schema."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.models import OutboxMessage, Step, Task
from agents.services import agent_update, task_submit
from governance.models import AuditEvent
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import ALICE, CRASH_EVENT, MAX, REFUND_TICKET, RITA

from .api_support import agent_make, approval_opened, member_add, signed_in, task_drive


@pytest.fixture
def refund(acme: Tenant) -> ApprovalRequest:
    """A resolution agent (ceiling 3) waiting for a reviewer to approve a 25 EUR refund."""
    return approval_opened(acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3)


@pytest.fixture
def restart(acme: Tenant) -> ApprovalRequest:
    """An ops agent (ceiling 4) waiting for an admin to approve restarting the api service."""
    return approval_opened(acme, name="pager", blueprint="ops", task_input=CRASH_EVENT, privilege_ceiling=4)


@pytest.fixture
def rita(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, RITA)


def _decide(
    client: Client,
    approval: ApprovalRequest,
    verdict: str,
    body: dict[str, Any] | None = None,
    *,
    seen_hash: bool = True,
) -> Any:
    """POST a decision; approving sends the action_hash as listed unless ``seen_hash`` is False."""
    body = dict(body or {})
    if verdict == "approve" and seen_hash:
        body.setdefault("action_hash", approval.action_hash)
    return client.post(f"/api/v1/hitl/{approval.pk}/{verdict}/", body, content_type="application/json")


def _refund_requested_by(tenant: Tenant, username: str) -> ApprovalRequest:
    """A refund waiting for approval, of a task that ``username`` submitted."""
    agent = agent_make(tenant, "refunds", "resolution", privilege_ceiling=3)
    task = task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=User.objects.get(username=username))
    return ApprovalRequest.objects.get(task=task_drive(task, {"awaiting_approval"}))


def _undecided(approval: ApprovalRequest) -> None:
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.decided_at) == ("pending", None, None)
    assert Task.objects.get(pk=approval.task_id).state == "awaiting_approval"
    assert not AuditEvent.objects.filter(
        target_type="approval", target_id=str(approval.pk), verb__in=["approval.approved", "approval.rejected"]
    ).exists()


def test_the_refund_request_opened_by_the_engine_is_stored_verbatim(refund: ApprovalRequest) -> None:
    assert (refund.tool, refund.arguments) == (
        "issue_refund",
        {"order_id": "AB1234", "amount": 25.0, "currency": "EUR"},
    )
    assert (refund.required_role, refund.privilege_level, refund.status, refund.step_index) == (
        "reviewer",
        3,
        "pending",
        2,
    )
    assert refund.task.state == "awaiting_approval"


def test_pending_lists_the_request_waiting_for_a_decision(refund: ApprovalRequest, rita: Client) -> None:
    response = rita.get("/api/v1/hitl/pending/")
    assert response.status_code == 200
    (listed,) = response.json()["results"]
    assert listed["id"] == refund.pk and listed["task"] == refund.task_id and listed["agent"] == "refunds"
    assert (listed["tool"], listed["arguments"], listed["action_hash"]) == (
        "issue_refund",
        refund.arguments,
        refund.action_hash,
    )
    assert (listed["status"], listed["required_role"], listed["decided_by"]) == ("pending", "reviewer", None)


def test_a_reviewer_approves_a_refund_and_the_task_resumes(refund: ApprovalRequest, rita: Client) -> None:
    attempt = refund.task.attempt
    response = _decide(rita, refund, "approve", {"note": "photos attached"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_note"]) == ("approved", RITA, "photos attached")
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert (refund.status, refund.decided_by.username, refund.decision_note) == ("approved", RITA, "photos attached")
    assert refund.decided_at is not None
    task = Task.objects.get(pk=refund.task_id)
    assert (task.state, task.attempt, task.ack_deadline is not None) == ("in_progress", attempt + 1, True)
    last = task.events.order_by("id").last()
    assert last is not None
    assert last.reason == f"approval {refund.pk} approved"
    event = AuditEvent.objects.get(verb="approval.approved", target_id=str(refund.pk))
    assert (event.actor_label, event.data["action_hash"]) == (RITA, refund.action_hash)
    assert rita.get("/api/v1/hitl/pending/").json()["count"] == 0


def test_the_approver_is_the_authenticated_user_whatever_the_body_says(
    acme: Tenant, refund: ApprovalRequest, rita: Client
) -> None:
    """A body naming another approver is refused, naming those fields, and decides nothing;
    the same decision without them is the signed-in reviewer's."""
    mallory = member_add(acme, "mallory@acme.example", "admin")
    refused = _decide(
        rita, refund, "approve", {"decided_by": mallory.username, "approver": mallory.pk, "user": mallory.pk}
    )
    assert refused.status_code == 400, refused.content
    assert set(refused.json()["extra"]["fields"]) == {"decided_by", "approver", "user"}
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by) == ("pending", None)
    response = _decide(rita, refund, "approve")
    assert response.status_code == 200
    assert response.json()["decided_by"] == RITA
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert refund.decided_by.username == RITA
    assert AuditEvent.objects.get(verb="approval.approved", target_id=str(refund.pk)).actor_label == RITA


def test_an_approved_refund_runs_once_when_the_task_advances(refund: ApprovalRequest, rita: Client) -> None:
    _decide(rita, refund, "approve")
    task = task_drive(Task.objects.get(pk=refund.task_id), {"verified", "escalated"})
    assert task.output is not None
    assert task.state == "verified" and task.output["status"] == "resolved"
    step = Step.objects.get(task=task, action="issue_refund")
    assert (step.index, step.decision, step.arguments) == (refund.step_index, "approved", refund.arguments)
    assert OutboxMessage.objects.filter(effect__task=task, effect__tool="issue_refund").count() == 1


def test_a_second_decision_is_rejected_with_409(refund: ApprovalRequest, rita: Client) -> None:
    _decide(rita, refund, "approve")
    refund.refresh_from_db()
    decided_at = refund.decided_at
    again = _decide(rita, refund, "approve")
    assert again.status_code == 409 and again.json()["code"] == "approval_already_decided"
    assert again.json()["extra"] == {"status": "approved"}
    contrary = _decide(rita, refund, "reject")
    assert contrary.status_code == 409 and contrary.json()["code"] == "approval_already_decided"
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert (refund.status, refund.decided_by.username, refund.decided_at) == ("approved", RITA, decided_at)
    assert (
        AuditEvent.objects.filter(
            target_type="approval", target_id=str(refund.pk), verb__in=["approval.approved", "approval.rejected"]
        ).count()
        == 1
    )


def test_approving_with_a_hash_other_than_the_stored_one_is_refused_with_409(
    refund: ApprovalRequest, rita: Client
) -> None:
    response = _decide(rita, refund, "approve", {"action_hash": "ab" * 32})
    assert response.status_code == 409
    assert response.json()["code"] == "approval_action_mismatch"
    assert response.json()["extra"] == {"action_hash": refund.action_hash}
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by) == ("pending", None)
    assert Task.objects.get(pk=refund.task_id).state == "awaiting_approval"


def test_approving_with_the_hash_the_reviewer_saw_succeeds(refund: ApprovalRequest, rita: Client) -> None:
    seen = rita.get(f"/api/v1/hitl/{refund.pk}/").json()["action_hash"]
    response = _decide(rita, refund, "approve", {"action_hash": seen})
    assert response.status_code == 200
    refund.refresh_from_db()
    assert refund.status == "approved"


def test_a_malformed_action_hash_is_refused_with_a_field_error(refund: ApprovalRequest, rita: Client) -> None:
    response = _decide(rita, refund, "approve", {"action_hash": "not-a-hash"})
    assert response.status_code == 400
    assert list(response.json()["extra"]["fields"]) == ["action_hash"]
    refund.refresh_from_db()
    assert refund.status == "pending"


def test_deciding_an_unknown_request_is_404(acme: Tenant, rita: Client) -> None:
    response = rita.post("/api/v1/hitl/999999/approve/", {}, content_type="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "approval_not_found"
    assert not ApprovalRequest.objects.exists()


def test_a_reviewer_cannot_approve_a_restart_that_needs_an_admin(restart: ApprovalRequest, rita: Client) -> None:
    assert (restart.tool, restart.arguments["service"], restart.required_role) == ("restart_service", "api", "admin")
    response = _decide(rita, restart, "approve")
    assert response.status_code == 403
    assert response.json()["code"] == "approval_forbidden"
    assert response.json()["extra"] == {"rule": "role", "required_role": "admin"}
    restart.refresh_from_db()
    assert (restart.status, restart.decided_by) == ("pending", None)
    assert Task.objects.get(pk=restart.task_id).state == "awaiting_approval"


def test_an_admin_approves_a_restart(acme: Tenant, restart: ApprovalRequest, acme_client: Client) -> None:
    response = _decide(signed_in(acme_client, acme, ALICE), restart, "approve")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["decided_by"]) == ("approved", ALICE)
    restart.refresh_from_db()
    assert restart.decided_by is not None
    assert (restart.status, restart.decided_by.username) == ("approved", ALICE)
    assert Task.objects.get(pk=restart.task_id).state == "in_progress"


def test_approvals_filter_by_status(refund: ApprovalRequest, restart: ApprovalRequest, rita: Client) -> None:
    _decide(rita, refund, "reject")
    rejected = rita.get("/api/v1/hitl/?status=rejected").json()["results"]
    pending = rita.get("/api/v1/hitl/pending/").json()["results"]
    assert [a["id"] for a in rejected] == [refund.pk]
    assert [a["id"] for a in pending] == [restart.pk]


def test_approving_without_the_action_hash_is_refused_with_400_and_decides_nothing(
    refund: ApprovalRequest, rita: Client
) -> None:
    response = _decide(rita, refund, "approve", {"note": "looks fine"}, seen_hash=False)
    assert response.status_code == 400
    assert response.json()["code"] == "approval_hash_required"
    assert response.json()["extra"] == {"fields": {"action_hash": "required to approve"}}
    _undecided(refund)


def test_rejecting_needs_no_action_hash(refund: ApprovalRequest, rita: Client) -> None:
    response = _decide(rita, refund, "reject", {"note": "no photos"})
    assert response.status_code == 200
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert (refund.status, refund.decided_by.username) == ("rejected", RITA)
    event = AuditEvent.objects.get(verb="approval.rejected", target_id=str(refund.pk))
    assert (event.actor_label, event.data["note"]) == (RITA, "no photos")


def test_the_requester_of_a_task_can_neither_approve_nor_reject_its_refund(acme: Tenant, acme_client: Client) -> None:
    refund = _refund_requested_by(acme, ALICE)
    alice = signed_in(acme_client, acme, ALICE)
    for verdict in ("approve", "reject"):
        response = _decide(alice, refund, verdict)
        assert response.status_code == 403, verdict
        assert (response.json()["code"], response.json()["extra"]) == ("approval_forbidden", {"rule": "requester"})
        assert "you requested this task" in response.json()["detail"]
    _undecided(refund)


def test_another_reviewer_approves_the_refund_of_a_task_the_admin_requested(acme: Tenant, rita: Client) -> None:
    refund = _refund_requested_by(acme, ALICE)
    response = _decide(rita, refund, "approve")
    assert response.status_code == 200
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert (refund.status, refund.decided_by.username) == ("approved", RITA)
    assert AuditEvent.objects.get(verb="approval.approved", target_id=str(refund.pk)).actor_label == RITA


def test_the_user_who_last_changed_the_agents_config_cannot_decide_its_approvals(
    acme: Tenant, refund: ApprovalRequest, acme_client: Client
) -> None:
    alice = User.objects.get(username=ALICE)
    agent_update(
        agent_id=refund.task.agent_id, user=alice, reason="auto-approve small refunds", config={"max_refund": 50}
    )
    response = _decide(signed_in(acme_client, acme, ALICE), refund, "approve")
    assert response.status_code == 403
    assert response.json()["extra"] == {"rule": "config_author", "agent": "refunds"}
    assert "latest change to agent refunds's configuration" in response.json()["detail"]
    _undecided(refund)


def test_an_earlier_config_author_may_decide_once_someone_else_changed_the_config(
    acme: Tenant, refund: ApprovalRequest, acme_client: Client
) -> None:
    agent_id = refund.task.agent_id
    agent_update(agent_id=agent_id, user=User.objects.get(username=ALICE), config={"max_refund": 50})
    agent_update(agent_id=agent_id, user=member_add(acme, MAX, "agent_manager"), config={"max_refund": 40})
    response = _decide(signed_in(acme_client, acme, ALICE), refund, "approve")
    assert response.status_code == 200
    refund.refresh_from_db()
    assert refund.decided_by is not None
    assert (refund.status, refund.decided_by.username) == ("approved", ALICE)
