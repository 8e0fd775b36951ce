"""Approval gates on a real worker: the resolution agent's refund waits for a reviewer, runs once
when approved, is never issued when rejected, and a cancelled, altered or doubly decided
request runs nothing.

These tests share the session's worker (``celery_worker``) and commit their data in acme.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from agents.models import Effect, OutboxMessage, Task
from agents.services import task_cancel, task_escalate, task_retry, task_submit
from config.connection import connection
from governance.models import AuditEvent
from hitl.exceptions import ApprovalAlreadyDecided, ApprovalMismatch
from hitl.models import ApprovalRequest
from hitl.services import approval_decide
from tenants.models import Tenant
from tests.agents.helpers_execution import (
    FINAL,
    audit_verbs,
    effect_keys,
    outbox_kinds,
    outcome,
    resolution_agent,
    send_advance,
    steps_of,
    transitions_of,
    triage_agent,
    use_tenant,
    user,
    wait_for_state,
)
from tests.conftest import ALICE, BILLING_TICKET, PASSWORD, REFUND_ARGUMENTS, REFUND_TICKET, RITA, WorkerHandle


def _awaiting_refund_approval() -> tuple[Task, ApprovalRequest]:
    """A resolution task of a new agent, stopped at its refund's approval gate."""
    agent = resolution_agent()
    task = task_submit(agent_name=agent.name, input=REFUND_TICKET)
    waiting = wait_for_state(task.pk, {"awaiting_approval"} | FINAL)
    assert waiting.state == "awaiting_approval", waiting.last_error
    return waiting, ApprovalRequest.objects.get(task=waiting)


def test_resolution_agent_waits_for_approval_then_refunds_and_replies(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()
    assert (request.tool, request.arguments, request.status, request.required_role, request.step_index) == (
        "issue_refund",
        REFUND_ARGUMENTS,
        "pending",
        "reviewer",
        2,
    )
    assert steps_of(task) == [("classify", "record"), ("draft", "record")]
    assert outbox_kinds(task) == []

    approval_decide(approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash)

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert done.output is not None
    assert done.output["status"] == "resolved"
    assert steps_of(done) == [
        ("classify", "record"),
        ("draft", "record"),
        ("issue_refund", "approved"),
        ("send_reply", "allow"),
    ]
    assert outbox_kinds(done) == ["refund", "reply"]
    request.refresh_from_db()
    assert request.decided_by is not None
    assert (request.status, request.decided_by.username) == ("approved", ALICE)
    assert transitions_of(done) == [
        ("queued", "assigned"),
        ("assigned", "acked"),
        ("acked", "in_progress"),
        ("in_progress", "awaiting_approval"),
        ("awaiting_approval", "in_progress"),
        ("in_progress", "completed"),
        ("completed", "verified"),
    ]
    assert "approval.approved" in audit_verbs(target_type="approval", target_id=request.pk)
    approved = AuditEvent.objects.get(target_type="approval", target_id=str(request.pk), verb="approval.approved")
    assert approved.actor_label == ALICE


def test_a_rejected_refund_is_never_issued_and_the_customer_is_told(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()

    approval_decide(approval_id=request.pk, user=user(RITA), verdict="reject", note="already refunded by phone")

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert done.output is not None
    assert done.output["status"] == "escalated"
    assert steps_of(done) == [
        ("classify", "record"),
        ("draft", "record"),
        ("issue_refund", "rejected"),
        ("send_reply", "allow"),
    ]
    assert done.steps.get(action="issue_refund").result == {"rejected": True, "note": "already refunded by phone"}
    assert outbox_kinds(done) == ["reply"]
    assert "cannot issue it automatically" in OutboxMessage.objects.get(effect__task=done).payload["body"]
    assert not Effect.objects.filter(idempotency_key=f"approval:{request.pk}").exists()
    request.refresh_from_db()
    assert request.decided_by is not None
    assert (request.status, request.decided_by.username) == ("rejected", RITA)


def test_an_approved_refund_runs_once_and_replayed_messages_are_dropped_as_stale(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()
    approval_decide(approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash)
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert Effect.objects.filter(idempotency_key=f"approval:{request.pk}").count() == 1

    # Every message this task was ever sent (the approval's among them) arrives once more.
    replays = [send_advance(task_id=task.pk, attempt=attempt) for attempt in range(1, done.attempt + 1)]

    assert [outcome(celery_worker, message) for message in replays] == ["stale"] * len(replays)
    assert Effect.objects.filter(idempotency_key=f"approval:{request.pk}").count() == 1
    assert effect_keys(done) == sorted([f"approval:{request.pk}", f"task:{task.pk}:step:3"])
    assert outbox_kinds(done) == ["refund", "reply"]
    assert Task.objects.get(pk=task.pk).attempt == done.attempt
    assert len(steps_of(done)) == 4


def test_the_same_message_delivered_twice_runs_one_step(committed: None, celery_worker: WorkerHandle) -> None:
    use_tenant("acme")
    agent = triage_agent()
    task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
    # Sent right after the engine's own first message (at the submit's commit): the same
    # task, the same attempt.
    duplicate = send_advance(task_id=task.pk, attempt=1)

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert outcome(celery_worker, duplicate) in {"stepped", "stale"}
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert transitions_of(done).count(("assigned", "acked")) == 1
    assert effect_keys(done) == [f"task:{task.pk}:step:1"]
    assert outbox_kinds(done) == ["reply"]


def test_cancelling_a_task_awaiting_approval_closes_the_request_and_runs_nothing_more(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()

    task_cancel(task_id=task.pk, user=user(ALICE), reason="customer withdrew the request")

    cancelled = Task.objects.get(pk=task.pk)
    assert cancelled.state == "cancelled"
    assert transitions_of(cancelled)[-1] == ("awaiting_approval", "cancelled")
    request.refresh_from_db()
    assert request.status == "cancelled" and request.decided_at is not None
    with pytest.raises(ApprovalAlreadyDecided) as refused:
        approval_decide(approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash)
    assert refused.value.status == 409
    late = [send_advance(task_id=task.pk, attempt=attempt) for attempt in range(1, cancelled.attempt + 1)]
    assert [outcome(celery_worker, message) for message in late] == ["stale"] * len(late)
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt) == ("cancelled", cancelled.attempt)
    assert steps_of(after) == [("classify", "record"), ("draft", "record")]
    assert effect_keys(after) == [] and outbox_kinds(after) == []


def test_approving_an_action_whose_arguments_were_altered_is_refused_with_409(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()
    with connection.cursor() as cursor:  # someone with database access raises the refund
        cursor.execute(
            "UPDATE hitl_approvalrequest SET arguments = %s WHERE id = %s",
            [json.dumps({**REFUND_ARGUMENTS, "amount": 2500.0}), request.pk],
        )

    with pytest.raises(ApprovalMismatch) as refused:
        approval_decide(approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash)

    assert refused.value.status == 409
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("pending", None)
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt) == ("awaiting_approval", task.attempt)
    assert after.context == task.context
    assert effect_keys(after) == [] and outbox_kinds(after) == []
    assert "approval.approved" not in audit_verbs(target_type="approval", target_id=request.pk)


def _post_at_once(requests: list[tuple[Client, str]], body: dict[str, Any]) -> list[Any]:
    """POST each (client, path) from its own thread (its own database connection), all
    released together by a barrier."""
    barrier = threading.Barrier(len(requests))
    responses: list[Any] = [None] * len(requests)

    def post(index: int, client: Client, path: str) -> None:
        try:
            barrier.wait(timeout=10)
            responses[index] = client.post(path, body, content_type="application/json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(i, client, path)) for i, (client, path) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses


def test_two_reviewers_approving_at_once_get_one_200_and_one_409(committed: None, celery_worker: WorkerHandle) -> None:
    acme = use_tenant("acme")
    task, request = _awaiting_refund_approval()
    clients = {}
    for username in (ALICE, RITA):
        connection.set_tenant(acme)
        clients[username] = Client(HTTP_HOST="acme.localhost")
        assert clients[username].login(username=username, password=PASSWORD)
    path = f"/api/v1/hitl/{request.pk}/approve/"

    responses = _post_at_once([(clients[ALICE], path), (clients[RITA], path)], {"action_hash": request.action_hash})

    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    assert sorted(r.status_code for r in responses) == [200, 409], [r.content for r in responses]
    winner, loser = sorted(zip((ALICE, RITA), responses, strict=True), key=lambda pair: pair[1].status_code)
    assert loser[1].json()["code"] == "approval_already_decided"
    assert winner[1].json()["decided_by"] == winner[0]
    request.refresh_from_db()
    assert request.decided_by is not None
    assert (request.status, request.decided_by.username) == ("approved", winner[0])
    assert audit_verbs(target_type="approval", target_id=request.pk).count("approval.approved") == 1
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert Effect.objects.filter(idempotency_key=f"approval:{request.pk}").count() == 1
    assert outbox_kinds(done) == ["refund", "reply"]


def test_a_task_escalated_at_its_approval_gate_and_retried_asks_for_approval_again(
    committed: None, celery_worker: WorkerHandle
) -> None:
    use_tenant("acme")
    task, request = _awaiting_refund_approval()
    task_escalate(task_id=task.pk, user=user(ALICE), reason="the customer called in")
    request.refresh_from_db()
    assert request.status == "cancelled"

    task_retry(task_id=task.pk, user=user(ALICE))

    back = wait_for_state(task.pk, {"awaiting_approval"} | FINAL, timeout=30)
    assert back.state == "awaiting_approval", back.last_error
    pending = ApprovalRequest.objects.get(task=task, status="pending")
    assert (pending.tool, pending.arguments) == ("issue_refund", REFUND_ARGUMENTS)
