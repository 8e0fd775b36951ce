"""Approval requests (F-HITL-1, 7, 8), end to end: opened when the engine stops a step at its gate
(through agents.hooks), decided here, closed with their task."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from agents.events import publish
from agents.exceptions import IllegalTransition
from agents.models import AgentConfigVersion, Task
from agents.services import task_resume
from config.connection import connection
from governance import access
from governance.access import Capability, Refusal
from governance.actors import Actor
from governance.services import audit_record
from hitl.binding import action_hash
from hitl.exceptions import (
    ApprovalAlreadyDecided,
    ApprovalForbidden,
    ApprovalHashRequired,
    ApprovalMismatch,
    ApprovalNotFound,
)
from hitl.models import ApprovalRequest, ApprovalStatus

APPROVE, REJECT = "approve", "reject"


def approval_refusal(*, approval: ApprovalRequest, user: User | AnonymousUser) -> Refusal | None:
    """Why ``user`` may not decide ``approval`` (None when they may): governance.access's
    rules, given this request's agent, its task's requester and the agent's latest config author."""
    task = approval.task
    config_author_id = (
        AgentConfigVersion.objects.filter(agent_id=task.agent_id)
        .order_by("-version")
        .values_list("author_id", flat=True)
        .first()
    )
    return access.decide_refusal(
        user,
        required_role=approval.required_role,
        agent_id=task.agent_id,
        agent_name=task.agent.name,
        requester_id=task.created_by_id,
        config_author_id=config_author_id,
    )


@transaction.atomic(durable=True)
def approval_decide(
    *, approval_id: int, user: User | AnonymousUser, verdict: str, note: str = "", seen_hash: str | None = None
) -> ApprovalRequest:
    """Approve or reject a pending request, once. The decider is the authenticated ``user``.

    Raises ApprovalNotFound (404), also for a request the user may not see; ApprovalForbidden
    (403) naming the rule (``extra.rule``: role, agent_scope, requester, config_author; see
    approval_refusal); ApprovalHashRequired (400) when approving without ``seen_hash``;
    ApprovalAlreadyDecided (409) for a second or conflicting decision; ApprovalMismatch
    (409) when the stored action no longer matches its hash or the hash the reviewer saw.
    Approving resumes the task at exactly that action; the worker re-checks the hash and runs
    it under the request's idempotency key."""
    if verdict not in (APPROVE, REJECT):
        raise ValueError(f"verdict must be {APPROVE} or {REJECT}")
    try:
        request = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {approval_id}") from None
    if not access.user_may(user, Capability.VIEW, request):
        raise ApprovalNotFound(f"no approval request {approval_id}")
    refusal = approval_refusal(approval=request, user=user)
    if refusal is not None:
        raise ApprovalForbidden(refusal.detail, rule=refusal.rule, **refusal.extra)
    # Rejecting runs nothing, so it needs no hash; approving binds to the action as shown.
    if verdict == APPROVE and not seen_hash:
        raise ApprovalHashRequired(
            "approving needs the action_hash of the action you reviewed", fields={"action_hash": "required to approve"}
        )
    if request.status != ApprovalStatus.PENDING:
        raise ApprovalAlreadyDecided(
            f"approval request {request.pk} is already {request.status}", status=request.status
        )
    expected = action_hash(tool=request.tool, arguments=request.arguments, schema=connection.schema_name)
    # Rejecting runs nothing, so an altered request can still be rejected; approving cannot.
    if verdict == APPROVE and expected != request.action_hash:
        raise ApprovalMismatch(f"the action of request {request.pk} was altered after it was proposed")
    if verdict == APPROVE and seen_hash is not None and seen_hash != request.action_hash:
        raise ApprovalMismatch(
            "the action changed since you saw it; reload and decide again", action_hash=request.action_hash
        )
    # The task's state and lease are the agents app's to move: it resumes the task at this
    # request's step (one statement), or refuses when the task no longer waits there.
    decided = ApprovalStatus.APPROVED if verdict == APPROVE else ApprovalStatus.REJECTED
    try:
        task_resume(
            task_id=request.task_id, step_index=request.step_index, user=user, reason=f"approval {request.pk} {decided}"
        )
    except IllegalTransition as exc:
        raise ApprovalAlreadyDecided(
            f"task {request.task_id} is {exc.extra['state']}; request {request.pk} can no longer resume it",
            task_state=exc.extra["state"],
        ) from None
    request.status = decided
    # Only an authenticated user gets past the access check above.
    request.decided_by = user if isinstance(user, User) else None
    request.decided_at = timezone.now()
    request.decision_note = note[:1000]
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        actor=Actor.for_user(user),
        verb=f"approval.{request.status}",
        target_type="approval",
        target_id=request.pk,
        data={
            "task_id": request.task_id,
            "tool": request.tool,
            "action_hash": request.action_hash,
            "note": note[:1000],
        },
    )
    return request


def approval_open(
    *,
    task: Task,
    step_index: int,
    tool: str,
    level: int,
    arguments: dict[str, Any],
    reasoning: str,
    required_role: str,
    actor: Actor,
) -> ApprovalRequest:
    """Open the request for a step that needs a human's decision: the action stored verbatim
    with the hash that binds a decision to it, an audit event, and an event for the reviewers'
    screens after commit. Runs inside the engine's step transaction, which has just moved the
    task to awaiting_approval (registered as agents.hooks' ``open``, see hitl.apps)."""
    request = ApprovalRequest.objects.create(
        task=task,
        step_index=step_index,
        tool=tool,
        arguments=arguments,
        action_hash=action_hash(tool=tool, arguments=arguments, schema=connection.schema_name),
        privilege_level=level,
        reasoning=reasoning,
        required_role=required_role,
    )
    audit_record(
        actor=actor,
        verb="approval.requested",
        target_type="approval",
        target_id=request.pk,
        data={"task_id": task.pk, "tool": tool, "action_hash": request.action_hash, "required_role": required_role},
    )
    publish("approval.requested", approval_id=request.pk, task_id=task.pk, tool=tool, required_role=required_role)
    return request


def approvals_close(*, task_id: int) -> int:
    """Close the pending requests of a task that was cancelled or escalated, inside the
    caller's transaction: nobody can decide them any more. Returns how many."""
    return ApprovalRequest.objects.filter(task_id=task_id, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now()
    )
