"""Quorum and separation of duties (F-HITL-10): a policy asks for N distinct eligible approvers;
each vote is stored once; the request stays open until the quorum is met, then the task resumes
exactly once; a reject by an eligible reviewer ends it; the requester, the agent's owner and its
latest config author never vote. Concurrent votes are serialized by the request's row lock."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from agents.models import Agent, AgentStatus, Effect, Step, Task, TaskEvent
from agents.services import agent_create, agent_status_set, task_submit
from config.connection import connection
from governance.models import AuditEvent
from governance.roles import user_roles_set
from hitl.assignment import approval_assign
from hitl.models import ApprovalRequest, ApprovalVote, Policy
from hitl.policies import policy_create
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in, task_drive
from tests.agents.helpers_execution import FINAL, unique, use_tenant, wait_for_state
from tests.conftest import ALICE, PASSWORD, REFUND_TICKET, RITA, WorkerHandle

from .support import profile, refund_agent, refund_waiting, reviewer

TWO_FOR_REFUNDS: dict[str, Any] = {"conditions": {"tools": ["issue_refund"]}, "quorum": 2}


def _two_needed() -> None:
    policy_create(name="two-for-refunds", content=TWO_FOR_REFUNDS, user=User.objects.get(username=ALICE))


def _post(client: Client, request: ApprovalRequest, verb: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/hitl/{request.pk}/{verb}/", body, content_type="application/json")


def _client(tenant: Tenant, username: str) -> Client:
    return signed_in(Client(HTTP_HOST="acme.localhost"), tenant, username)


@pytest.fixture
def quorum_refund(acme: Tenant) -> ApprovalRequest:
    connection.set_tenant(acme)
    _two_needed()
    request = refund_waiting(acme, refund_agent(acme))
    assert request.quorum == 2
    return request


def test_the_request_stays_open_until_two_distinct_reviewers_approve(
    acme: Tenant, quorum_refund: ApprovalRequest
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = quorum_refund
    first = _post(_client(acme, ann.username), request, "approve", {"action_hash": request.action_hash})
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["status"] in ("pending", "assigned") and body["decided_by"] is None
    assert (body["quorum_progress"]["required"], body["quorum_progress"]["approvals"]) == (2, 1)
    assert [v["user"] for v in body["quorum_progress"]["votes"]] == [ann.username]
    assert Task.objects.get(pk=request.task_id).state == "awaiting_approval"

    again = _post(
        _client(acme, ann.username), request, "respond", {"verdict": "approve", "action_hash": request.action_hash}
    )
    assert (again.status_code, again.json()["code"]) == (409, "approval_already_voted")
    assert again.json()["extra"] == {"approvals": 1, "quorum": 2}

    second = _post(_client(acme, RITA), request, "approve", {"action_hash": request.action_hash})
    assert second.status_code == 200, second.content
    assert (second.json()["status"], second.json()["decided_by"]) == ("approved", RITA)
    assert second.json()["quorum_progress"]["approvals"] == 2
    assert Task.objects.get(pk=request.task_id).state == "in_progress"
    assert list(request.history.values_list("kind", flat=True))[-2:] == ["voted", "approved"]
    verbs = list(
        AuditEvent.objects.filter(target_id=str(request.pk), verb__startswith="approval.").values_list(
            "verb", flat=True
        )
    )
    assert (verbs.count("approval.voted"), verbs.count("approval.approved")) == (1, 1)
    task = task_drive(Task.objects.get(pk=request.task_id), {"verified", "escalated"})
    assert Step.objects.get(task=task, index=request.step_index).decision == "approved"


def test_the_assignee_who_voted_leaves_the_request_to_another_reviewer(
    acme: Tenant, quorum_refund: ApprovalRequest
) -> None:
    request = quorum_refund
    ann = reviewer(acme, "ann@acme.example")
    assert approval_assign(approval_id=request.pk) == ann
    ben = reviewer(acme, "ben@acme.example")
    response = _post(_client(acme, ann.username), request, "approve", {"action_hash": request.action_hash})
    assert response.status_code == 200
    request.refresh_from_db()
    assert (request.assignee, request.status) == (ben, "assigned")
    assert (profile(ann).open_count, profile(ben).open_count) == (0, 1)


def test_a_reject_by_an_eligible_reviewer_ends_the_request(acme: Tenant, quorum_refund: ApprovalRequest) -> None:
    request = quorum_refund
    ann = reviewer(acme, "ann@acme.example")
    assert (
        _post(_client(acme, ann.username), request, "approve", {"action_hash": request.action_hash}).status_code == 200
    )
    rejected = _post(_client(acme, RITA), request, "respond", {"verdict": "reject", "reason": "wrong order"})
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
    assert sorted(ApprovalVote.objects.filter(approval=request).values_list("verdict", flat=True)) == [
        "approve",
        "reject",
    ]
    assert Task.objects.get(pk=request.task_id).state == "in_progress"
    late = _post(_client(acme, ALICE), request, "approve", {"action_hash": request.action_hash})
    assert (late.status_code, late.json()["code"]) == (409, "approval_already_decided")


def test_an_edit_comes_before_any_approval_and_the_quorum_approves_the_edited_action(
    acme: Tenant, quorum_refund: ApprovalRequest
) -> None:
    request = quorum_refund
    ann = reviewer(acme, "ann@acme.example")
    edited = {"order_id": "AB1234", "amount": 20.0, "currency": "EUR"}
    response = _post(
        _client(acme, ann.username),
        request,
        "respond",
        {"verdict": "edit", "action_hash": request.action_hash, "arguments": edited},
    )
    assert response.status_code == 200, response.content
    new_hash = response.json()["action_hash"]
    assert new_hash != request.action_hash and response.json()["quorum_progress"]["approvals"] == 1
    stale = _post(_client(acme, RITA), request, "approve", {"action_hash": request.action_hash})
    assert (stale.status_code, stale.json()["code"]) == (409, "approval_action_mismatch")
    done = _post(_client(acme, RITA), request, "approve", {"action_hash": new_hash})
    assert (done.status_code, done.json()["status"]) == (200, "edited")
    task = task_drive(Task.objects.get(pk=request.task_id), {"verified", "escalated"})
    assert Step.objects.get(task=task, index=request.step_index).arguments == edited


def test_nobody_edits_an_action_that_already_holds_an_approval(acme: Tenant, quorum_refund: ApprovalRequest) -> None:
    request = quorum_refund
    ann = reviewer(acme, "ann@acme.example")
    assert (
        _post(_client(acme, ann.username), request, "approve", {"action_hash": request.action_hash}).status_code == 200
    )
    response = _post(
        _client(acme, RITA),
        request,
        "respond",
        {"verdict": "edit", "action_hash": request.action_hash, "arguments": {"order_id": "X", "amount": 1.0}},
    )
    assert (response.status_code, response.json()["code"]) == (409, "approval_edit_after_votes")
    request.refresh_from_db()
    assert request.original_hash == "" and ApprovalVote.objects.filter(approval=request).count() == 1


def test_the_agents_owner_neither_approves_nor_is_assigned(acme: Tenant) -> None:
    owner = reviewer(acme, "owen@acme.example")
    connection.set_tenant(acme)
    agent = agent_create(name="owned-refunds", blueprint="resolution", privilege_ceiling=3, user=owner)
    request = refund_waiting(acme, agent)
    assert request.assignee is None  # the only reviewer with a slot owns the agent
    response = _post(_client(acme, owner.username), request, "approve", {"action_hash": request.action_hash})
    assert response.status_code == 403
    assert response.json()["extra"] == {"rule": "owner", "agent": "owned-refunds"}
    assert not ApprovalVote.objects.filter(approval=request).exists()


def test_the_requester_cannot_vote(acme: Tenant) -> None:
    connection.set_tenant(acme)
    _two_needed()
    agent = refund_agent(acme)
    task = task_submit(agent_id=agent.pk, input=REFUND_TICKET, user=User.objects.get(username=RITA))
    task = task_drive(task, {"awaiting_approval"})
    request = ApprovalRequest.objects.get(task=task)
    response = _post(_client(acme, RITA), request, "approve", {"action_hash": request.action_hash})
    assert (response.status_code, response.json()["extra"]["rule"]) == (403, "requester")


# ---------------------------------------------------------------------------- concurrency
def _at_once(calls: list[tuple[Client, str, dict[str, Any]]]) -> list[Any]:
    """POST each (client, path, body) from its own thread (its own database connection), all
    released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    responses: list[Any] = [None] * len(calls)

    def post(index: int, client: Client, path: str, body: dict[str, Any]) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = client.post(path, body, content_type="application/json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


COMMITTED_AGENT = "hitl-policy-tests"  # shared by the committed tests of tests/hitl (the tenant's agents are limited)


def _committed_agent_needing_two() -> Agent:
    """The committed resolution agent whose refunds need two approvers (created once a session)."""
    agent = Agent.objects.filter(name=COMMITTED_AGENT).first() or agent_create(
        name=COMMITTED_AGENT, blueprint="resolution", privilege_ceiling=3
    )
    if agent.status == AgentStatus.PAUSED:  # the committed fixture pauses it after each test
        agent_status_set(agent_id=agent.pk, status=AgentStatus.ENABLED, user=None)
        agent.refresh_from_db()
    if not Policy.objects.filter(name=f"{COMMITTED_AGENT}-quorum").exists():
        policy_create(
            name=f"{COMMITTED_AGENT}-quorum",
            content={**TWO_FOR_REFUNDS, "conditions": {**TWO_FOR_REFUNDS["conditions"], "agents": [COMMITTED_AGENT]}},
            user=User.objects.get(username=ALICE),
        )
    return agent


def _committed_reviewers(tenant: Tenant, count: int) -> list[Client]:
    clients = []
    for _ in range(count):
        user = member_add(tenant, f"{unique('voter')}@acme.example", "reviewer")
        client = Client(HTTP_HOST="acme.localhost")
        connection.set_tenant(tenant)
        assert client.login(username=user.username, password=PASSWORD)
        clients.append(client)
    return clients


def test_three_concurrent_approvals_of_a_quorum_of_two_count_two_and_resume_the_task_once(
    committed: None, celery_worker: WorkerHandle
) -> None:
    acme = use_tenant("acme")
    agent = _committed_agent_needing_two()
    task = wait_for_state(task_submit(agent_name=agent.name, input=REFUND_TICKET).pk, {"awaiting_approval"} | FINAL)
    request = ApprovalRequest.objects.get(task=task)
    assert request.quorum == 2
    clients = _committed_reviewers(acme, 3)
    path = f"/api/v1/hitl/{request.pk}/approve/"

    responses = _at_once([(client, path, {"action_hash": request.action_hash}) for client in clients])

    use_tenant("acme")
    assert sorted(r.status_code for r in responses) == [200, 200, 409], [r.content for r in responses]
    assert [r.json()["code"] for r in responses if r.status_code == 409] == ["approval_already_decided"]
    assert ApprovalVote.objects.filter(approval=request).count() == 2
    request.refresh_from_db()
    assert request.status == "approved"
    verbs = list(
        AuditEvent.objects.filter(target_id=str(request.pk), verb__startswith="approval.").values_list(
            "verb", flat=True
        )
    )
    assert (verbs.count("approval.voted"), verbs.count("approval.approved")) == (1, 1)
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    resumed = TaskEvent.objects.filter(task=task, from_state="awaiting_approval", to_state="in_progress")
    assert resumed.count() == 1
    assert Effect.objects.filter(idempotency_key=f"approval:{request.pk}").count() == 1


def test_one_reviewer_voting_twice_at_once_counts_once(committed: None, celery_worker: WorkerHandle) -> None:
    acme = use_tenant("acme")
    agent = _committed_agent_needing_two()
    task = wait_for_state(task_submit(agent_name=agent.name, input=REFUND_TICKET).pk, {"awaiting_approval"} | FINAL)
    request = ApprovalRequest.objects.get(task=task)
    (client,) = _committed_reviewers(acme, 1)
    path = f"/api/v1/hitl/{request.pk}/approve/"

    responses = _at_once([(client, path, {"action_hash": request.action_hash})] * 2)

    use_tenant("acme")
    assert sorted(r.status_code for r in responses) == [200, 409], [r.content for r in responses]
    assert [r.json()["code"] for r in responses if r.status_code == 409] == ["approval_already_voted"]
    assert ApprovalVote.objects.filter(approval=request).count() == 1
    request.refresh_from_db()
    assert request.is_open
    assert Task.objects.get(pk=task.pk).state == "awaiting_approval"


def test_a_vote_counts_only_while_its_voter_may_still_decide_the_request(
    acme: Tenant, quorum_refund: ApprovalRequest
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = quorum_refund
    first = _post(_client(acme, ann.username), request, "approve", {"action_hash": request.action_hash})
    assert first.status_code == 200, first.content
    connection.set_tenant(acme)
    user_roles_set(user=ann, roles=["viewer"], actor=None)  # ann is a reviewer no more

    second = _post(_client(acme, RITA), request, "approve", {"action_hash": request.action_hash})

    assert second.status_code == 200, second.content
    assert second.json()["status"] != "approved"
    assert (second.json()["quorum_progress"]["approvals"], second.json()["quorum_progress"]["required"]) == (1, 2)
    connection.set_tenant(acme)
    assert Task.objects.get(pk=request.task_id).state == "awaiting_approval"
