"""Deciding approval requests (F-HITL-1, 7, 8). Requests are opened by the engine."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from agents.engine import lease_renew
from agents.models import Task, TaskState
from agents.states import task_transition
from governance.actors import Actor
from governance.services import audit_record
from hitl.binding import action_hash
from hitl.exceptions import ApprovalAlreadyDecided, ApprovalForbidden, ApprovalMismatch, ApprovalNotFound
from hitl.models import ApprovalRequest, ApprovalStatus

APPROVE, REJECT = "approve", "reject"


def reviewer_may_decide(*, user: AbstractBaseUser, required_role: str) -> bool:
    """Admins decide everything; reviewers decide what needs a reviewer."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    roles = set(user.groups.values_list("name", flat=True))
    return "admin" in roles or (required_role == "reviewer" and "reviewer" in roles)


@transaction.atomic(durable=True)
def approval_decide(*, approval_id: int, user: AbstractBaseUser, verdict: str, note: str = "",
                    seen_hash: str | None = None) -> ApprovalRequest:
    """Approve or reject a pending request, once. The decider is the authenticated ``user``.

    Raises ApprovalNotFound (404); ApprovalForbidden (403) when the user lacks the required
    role; ApprovalAlreadyDecided (409) for a second or conflicting decision; ApprovalMismatch
    (409) when the stored action no longer matches its hash or the hash the reviewer saw.
    Approving resumes the task at exactly that action; the worker re-checks the hash and runs
    it under the request's idempotency key."""
    if verdict not in (APPROVE, REJECT):
        raise ValueError(f"verdict must be {APPROVE} or {REJECT}")
    try:
        request = ApprovalRequest.objects.select_for_update().get(pk=approval_id)
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {approval_id}") from None
    if not reviewer_may_decide(user=user, required_role=request.required_role):
        raise ApprovalForbidden(f"deciding this request needs the {request.required_role} role",
                                required_role=request.required_role)
    if request.status != ApprovalStatus.PENDING:
        raise ApprovalAlreadyDecided(f"approval request {request.pk} is already {request.status}",
                                     status=request.status)
    expected = action_hash(tool=request.tool, arguments=request.arguments, schema=connection.schema_name)
    # Rejecting runs nothing, so an altered request can still be rejected; approving cannot.
    if verdict == APPROVE and expected != request.action_hash:
        raise ApprovalMismatch(f"the action of request {request.pk} was altered after it was proposed")
    if verdict == APPROVE and seen_hash is not None and seen_hash != request.action_hash:
        raise ApprovalMismatch("the action changed since you saw it; reload and decide again",
                               action_hash=request.action_hash)
    task = Task.objects.select_for_update().get(pk=request.task_id)
    if task.state != TaskState.AWAITING_APPROVAL or task.steps.filter(index__gte=request.step_index).exists():
        raise ApprovalAlreadyDecided(f"task {task.pk} is {task.state}; request {request.pk} can no longer resume it",
                                     task_state=task.state)
    request.status = ApprovalStatus.APPROVED if verdict == APPROVE else ApprovalStatus.REJECTED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.decision_note = note[:1000]
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    actor = Actor.for_user(user)
    task.context = {**task.context, "decided_approval": request.pk}
    task.save(update_fields=["context", "updated_at"])
    task_transition(task=task, to=TaskState.IN_PROGRESS, actor=actor, reason=f"approval {request.pk} {request.status}")
    lease_renew(task)
    audit_record(actor=actor, verb=f"approval.{request.status}", target_type="approval", target_id=request.pk,
                 data={"task_id": task.pk, "tool": request.tool, "action_hash": request.action_hash, "note": note[:1000]})
    return request
