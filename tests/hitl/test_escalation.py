"""Manual escalation (POST /api/v1/hitl/escalate/, the admin action and the decision page's
button): the next tier of the ladder now, with a reason: priority raised, the tier's role,
reassigned and notified, in the history and the audit chain; who may, and the clear errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from agents.models import Task
from agents.services import task_cancel
from config.connection import connection
from governance.models import AuditEvent
from hitl.clarification import clarification_ask
from hitl.models import ApprovalRequest
from hitl.policies import policy_create
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in, token_for
from tests.conftest import ALICE, BOB, RITA

from .support import profile, refund_agent, refund_waiting, review_scope, reviewer, staff

ESCALATE = "/api/v1/hitl/escalate/"
Capture = Callable[..., Any]


def _escalate(client: Client, body: dict[str, Any]) -> Any:
    return client.post(ESCALATE, body, content_type="application/json")


def test_a_reviewer_escalates_a_request_to_the_admin_tier_now(
    acme: Tenant, acme_client: Client, django_capture_on_commit_callbacks: Capture
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    boss = reviewer(acme, "boss@acme.example", role="admin")
    assert (request.assignee, request.get_priority_display()) == (ann, "medium")
    client = signed_in(acme_client, acme, RITA)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = _escalate(client, {"approval": request.pk, "reason": "the customer is a key account"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["assignee"], body["priority"]) == ("assigned", boss.username, "high")
    assert (body["required_role"], body["escalation_level"]) == ("admin", 1)
    assert (profile(ann).open_count, profile(boss).open_count) == (0, 1)
    request.refresh_from_db()
    assert request.breached_at is None  # escalated by a person, not by the clock
    escalated = request.history.get(kind="escalated")
    assert escalated.actor is not None and escalated.actor.username == RITA
    assert escalated.data["reason"] == "the customer is a key account" and escalated.data["manual"] is True
    assert escalated.data["previous_assignee"] == ann.username
    assert [e["kind"] for e in body["history"]][-2:] == ["escalated", "assigned"]
    audit = AuditEvent.objects.get(verb="approval.escalated", target_id=str(request.pk))
    assert (audit.actor_label, audit.data["reason"]) == (RITA, "the customer is a key account")
    assert [m.to for m in mail.outbox] == [[boss.email]]


def test_a_waiting_task_is_escalated_by_its_id(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, ALICE)
    response = _escalate(client, {"task": request.task_id, "reason": "urgent", "target": "admin"})
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["required_role"]) == (request.pk, "admin")
    assert Task.objects.get(pk=request.task_id).state == "awaiting_approval"  # still waiting for a decision


def test_escalating_needs_a_reason_and_one_open_request(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    missing = _escalate(client, {"approval": request.pk})
    assert (missing.status_code, missing.json()["code"]) == (400, "invalid")
    assert "reason" in missing.json()["extra"]["fields"]
    blank = _escalate(client, {"approval": request.pk, "reason": "   "})
    assert blank.status_code == 400
    neither = _escalate(client, {"reason": "urgent"})
    assert (neither.status_code, neither.json()["code"]) == (400, "escalation_invalid")
    both = _escalate(client, {"approval": request.pk, "task": request.task_id, "reason": "urgent"})
    assert (both.status_code, both.json()["code"]) == (400, "escalation_invalid")
    lower = _escalate(client, {"approval": request.pk, "reason": "urgent", "target": "reviewer"})
    assert (lower.status_code, lower.json()["extra"]["fields"]) == (400, {"target": "must be above reviewer"})
    unknown = _escalate(client, {"approval": request.pk, "reason": "urgent", "target": "ceo"})
    assert unknown.status_code == 400
    request.refresh_from_db()
    assert (request.escalation_level, request.status) == (0, "pending")
    assert not request.history.filter(kind="escalated").exists()


def test_a_closed_request_or_a_task_that_waits_for_nothing_is_409(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    task_cancel(task_id=request.task_id, user=None)
    client = signed_in(acme_client, acme, RITA)
    closed = _escalate(client, {"approval": request.pk, "reason": "urgent"})
    assert (closed.status_code, closed.json()["code"]) == (409, "approval_already_decided")
    by_task = _escalate(client, {"task": request.task_id, "reason": "urgent"})
    assert (by_task.status_code, by_task.json()["code"]) == (409, "task_not_waiting")
    assert by_task.json()["extra"] == {"state": "cancelled"}


def test_a_request_waiting_for_the_requesters_answer_is_not_escalated(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    clarification_ask(approval_id=request.pk, user=staff(acme, "rev@acme.example", "reviewer"), question="Which?")
    response = _escalate(signed_in(acme_client, acme, RITA), {"approval": request.pk, "reason": "urgent"})
    assert (response.status_code, response.json()["code"]) == (409, "approval_awaiting_clarification")


def test_viewers_out_of_scope_reviewers_and_other_tenants_cannot_escalate(
    acme: Tenant, beta: Tenant, acme_client: Client, beta_client: Client
) -> None:
    agent = refund_agent(acme)
    request = refund_waiting(acme, agent)
    member_add(acme, "vic@acme.example", "viewer")
    viewer = _escalate(signed_in(acme_client, acme, "vic@acme.example"), {"approval": request.pk, "reason": "x"})
    assert viewer.status_code == 403
    other = refund_agent(acme, "other-refunds")
    scoped = staff(acme, "sam@acme.example", "reviewer")
    review_scope(acme, scoped, other)
    out_of_sight = _escalate(
        signed_in(Client(HTTP_HOST="acme.localhost"), acme, scoped.username),
        {
            "approval": request.pk,
            "reason": "x",
        },
    )
    assert (out_of_sight.status_code, out_of_sight.json()["code"]) == (404, "approval_not_found")
    bob = Client(HTTP_HOST="beta.localhost", HTTP_AUTHORIZATION=f"Token {token_for(beta_client, BOB)}")
    foreign = _escalate(bob, {"approval": request.pk, "reason": "x"})
    assert foreign.status_code == 404
    foreign_task = _escalate(bob, {"task": request.task_id, "reason": "x"})
    assert foreign_task.status_code == 404
    connection.set_tenant(acme)
    request.refresh_from_db()
    assert (request.escalation_level, request.priority) == (0, 2)


def test_the_admin_action_escalates_the_selected_requests_with_the_reason_typed_next_to_it(
    acme: Tenant, acme_client: Client
) -> None:
    agent = refund_agent(acme)
    first, second = refund_waiting(acme, agent), refund_waiting(acme, agent)
    client = signed_in(acme_client, acme, RITA)
    changelist = "/admin/hitl/approvalrequest/"
    selected = {"action": "escalate_selected", "_selected_action": [first.pk, second.pk], "index": 0}
    client.post(changelist, {**selected, "reason": ""})
    assert ApprovalRequest.objects.filter(pk__in=[first.pk, second.pk], escalation_level=0).count() == 2
    response = client.post(changelist, {**selected, "reason": "backlog"}, follow=True)
    assert "2 request(s) escalated" in response.content.decode()
    for request in (first, second):
        request.refresh_from_db()
        assert (request.escalation_level, request.required_role) == (1, "admin")
        assert request.history.get(kind="escalated").data["reason"] == "backlog"


def test_the_decision_page_has_an_escalate_button_for_reviewers_only(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    url = f"/admin/hitl/approvalrequest/{request.pk}/escalate/"
    client = signed_in(acme_client, acme, RITA)
    page = client.get(f"/admin/hitl/approvalrequest/{request.pk}/decide/").content.decode()
    assert 'id="escalate-form"' in page and url in page
    response = client.post(url, {"reason": "the amount is unusual"})
    assert response.status_code == 302 and response["Location"].endswith(f"/{request.pk}/decide/")
    request.refresh_from_db()
    assert (request.escalation_level, request.get_priority_display()) == (1, "high")
    viewer = staff(acme, "vip@acme.example", "viewer")
    refused = signed_in(Client(HTTP_HOST="acme.localhost"), acme, viewer.username).post(url, {"reason": "x"})
    assert refused.status_code == 403
    request.refresh_from_db()
    assert request.escalation_level == 1


def test_a_request_decided_by_a_policy_is_escalated_on_its_policys_ladder(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    policy_create(
        name="refunds-to-managers",
        content={
            "conditions": {"tools": ["issue_refund"]},
            "sla_minutes": {"medium": 10},
            "ladder": {"steps": [{"role": "admin", "raise_priority": False}]},
        },
        user=User.objects.get(username=ALICE),
    )
    request = refund_waiting(acme, refund_agent(acme))
    assert request.policy_version_id is not None
    response = _escalate(signed_in(acme_client, acme, RITA), {"approval": request.pk, "reason": "needs a manager"})
    assert response.status_code == 200, response.content
    request.refresh_from_db()
    # The policy's step names the tier and keeps the priority; its SLA restarts the clock.
    assert (request.required_role, request.get_priority_display(), request.escalation_level) == ("admin", "medium", 1)
    escalated = request.history.get(kind="escalated")
    assert request.due_at is not None and request.due_at - escalated.created_at == timedelta(minutes=10)


def test_a_request_at_the_last_tier_is_not_escalated_again(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, ALICE)
    assert _escalate(client, {"approval": request.pk, "reason": "to the admins"}).status_code == 200
    connection.set_tenant(acme)
    before = ApprovalRequest.objects.get(pk=request.pk)

    again = _escalate(client, {"approval": request.pk, "reason": "once more, to put the expiry off"})

    assert again.status_code == 400, again.content
    assert again.json()["code"] == "escalation_invalid" and "last tier" in again.json()["detail"]
    connection.set_tenant(acme)
    after = ApprovalRequest.objects.get(pk=request.pk)
    assert (after.escalation_level, after.due_at, after.priority) == (
        before.escalation_level,
        before.due_at,
        before.priority,
    )
