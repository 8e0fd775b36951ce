"""Manual escalation (F-HITL-5): a reviewer of the agent, or an admin, moves an open request, or
the request a waiting task is stopped at, to the next tier of the SLA ladder now, with a reason,
without waiting for its deadline.

It is the ladder's escalation step taken by a person, on the request's own ladder (its policy
version's, see hitl.policies.ladder_of, or the default one): the priority is raised one step
(unless that ladder says this level does not raise it), the deciding role becomes the ladder's
next tier (``Ladder.tier_role``), the SLA restarts for the new priority, and the request
leaves its assignee for the least-loaded eligible reviewer of that tier (hitl.assignment, which
notifies them after commit). The escalation level counts manual and automatic escalations
alike, so a request escalated by hand has used that step of the ladder: its next breach takes
the next step (or the terminal action).

A request waiting for the requester's answer (hitl.clarification) is not escalated: its clock
is stopped on the requester, not on the reviewers."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction
from django.utils import timezone

from agents.events import publish
from agents.models import Task
from config.errors import VigilError
from governance import access
from governance.access import Capability
from governance.actors import Actor
from governance.services import audit_record
from hitl.assignment import assign_next, slot_free
from hitl.exceptions import ApprovalAlreadyDecided, ApprovalForbidden, ApprovalNotFound, AwaitingClarification
from hitl.models import (
    OPEN_STATUSES,
    ApprovalEvent,
    ApprovalEventKind,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalStatus,
)
from hitl.notify import Notice
from hitl.policies import ladder_of
from hitl.sla import DEFAULT_LADDER, Ladder

REASON_MAX = 1000


class EscalationInvalid(VigilError):
    """The escalation names no request (or two), no reason, or a tier that is not above."""

    code = "escalation_invalid"
    status = 400


class TaskNotWaiting(VigilError):
    """The task is not stopped at an approval gate: there is no request to escalate."""

    code = "task_not_waiting"
    status = 409


def _request_of_task(task_id: int, user: User | AnonymousUser) -> int:
    task = Task.objects.select_related("agent").filter(pk=task_id).first()
    if task is None or not access.user_may(user, Capability.VIEW, task):
        raise ApprovalNotFound(f"no task {task_id}")
    approval_id = (
        ApprovalRequest.objects.filter(task_id=task_id, status__in=OPEN_STATUSES).values_list("pk", flat=True).first()
    )
    if approval_id is None:
        raise TaskNotWaiting(f"task {task_id} is {task.state}: it waits for no decision", state=task.state)
    return approval_id


def _target_level(approval: ApprovalRequest, target: str | None, ladder: Ladder) -> int:
    """The escalation level to move to: the next one, or the first that ``target`` (a tier of
    the ladder) decides at, which must be above the request's current role."""
    if approval.escalation_level >= ladder.escalations:
        # Past the last tier only the terminal action is left: escalating again would put it off.
        raise EscalationInvalid(
            f"request {approval.pk} is at the last tier of its ladder ({approval.required_role}); "
            "nothing above it to escalate to",
            fields={"approval": "at the last tier"},
        )
    level = approval.escalation_level + 1
    if not target:
        return level
    if target not in ladder.tiers:
        raise EscalationInvalid(
            f"target must be a tier of the ladder: {', '.join(ladder.tiers)}",
            fields={"target": f"one of {', '.join(ladder.tiers)}"},
        )
    wanted = ladder.tiers.index(target)
    current = ladder.tiers.index(approval.required_role) if approval.required_role in ladder.tiers else -1
    if wanted <= current:
        raise EscalationInvalid(
            f"request {approval.pk} already needs a {approval.required_role}; escalate it above that",
            fields={"target": f"must be above {approval.required_role}"},
        )
    return max(level, wanted)


@transaction.atomic(durable=True)
def approval_escalate(
    *,
    user: User | AnonymousUser,
    reason: str,
    approval_id: int | None = None,
    task_id: int | None = None,
    target: str | None = None,
    now: datetime | None = None,
    ladder: Ladder | None = None,
) -> ApprovalRequest:
    """Escalate the open request ``approval_id`` (or the one task ``task_id`` waits at) to the
    next tier of its ladder (``ladder`` overrides it), or to tier ``target``, for ``reason``;
    see the module docstring.

    Raises EscalationInvalid (400: no reason, neither or both of the ids, a target not above);
    ApprovalNotFound (404, also for a request or task out of the user's sight);
    ApprovalForbidden (403, rule ``role`` or ``agent_scope``: escalating needs ``review`` on
    the agent); TaskNotWaiting (409); ApprovalAlreadyDecided (409, a closed request);
    AwaitingClarification (409)."""
    reason = (reason or "").strip()
    if (approval_id is None) == (task_id is None):
        raise EscalationInvalid(
            "name the approval request or the task to escalate (one of them)",
            fields={"approval": "approval or task is required", "task": "approval or task is required"},
        )
    # Exactly one of the two is given (checked above).
    pk = _request_of_task(task_id, user) if task_id is not None else cast(int, approval_id)
    try:
        approval = (
            ApprovalRequest.objects.select_for_update(of=("self",))
            .select_related("task__agent", "assignee", "policy_version")
            .get(pk=pk)
        )
    except (ApprovalRequest.DoesNotExist, ValueError, TypeError):
        raise ApprovalNotFound(f"no approval request {pk}") from None
    if not access.user_may(user, Capability.VIEW, approval):
        raise ApprovalNotFound(f"no approval request {pk}")
    if not access.user_may(user, Capability.REVIEW):
        raise ApprovalForbidden("escalating needs the reviewer role", rule="role", required_role="reviewer")
    if not access.user_may(user, Capability.REVIEW, approval):
        agent = approval.task.agent.name
        raise ApprovalForbidden(f"you do not review agent {agent}", rule="agent_scope", agent=agent)
    if not reason:
        raise EscalationInvalid("escalating needs a reason", fields={"reason": "required to escalate"})
    if approval.status not in OPEN_STATUSES:
        raise ApprovalAlreadyDecided(
            f"approval request {approval.pk} is already {approval.status}", status=approval.status
        )
    if approval.status == ApprovalStatus.CLARIFICATION:
        raise AwaitingClarification(
            f"approval request {approval.pk} waits for the requester's answer; escalate it once answered"
        )
    if ladder is None:
        ladder = ladder_of(approval.policy_version) if approval.policy_version is not None else DEFAULT_LADDER
    _escalate(
        approval,
        user=user,
        reason=reason[:REASON_MAX],
        level=_target_level(approval, target, ladder),
        now=now or timezone.now(),
        ladder=ladder,
    )
    return approval


def _escalate(
    approval: ApprovalRequest,
    *,
    user: User | AnonymousUser,
    reason: str,
    level: int,
    now: datetime,
    ladder: Ladder,
) -> None:
    previous = approval.assignee
    previous_priority = approval.priority
    slot_free(approval)
    approval.escalation_level = level
    if ladder.raises_priority(level=level):
        approval.priority = min(approval.priority + 1, ApprovalPriority.CRITICAL)
    approval.required_role = ladder.tier_role(level=level, current=approval.required_role)
    approval.due_at = ladder.due(priority=approval.priority, start=now)
    approval.remind_at = ladder.remind(priority=approval.priority, start=now)
    approval.reminded_at = None
    approval.status = ApprovalStatus.ESCALATED
    approval.assignee = None
    approval.assigned_at = None
    approval.save(
        update_fields=[
            "escalation_level",
            "priority",
            "required_role",
            "due_at",
            "remind_at",
            "reminded_at",
            "status",
            "assignee",
            "assigned_at",
        ]
    )
    actor = user if isinstance(user, User) else None
    data = {
        "manual": True,
        "reason": reason,
        "level": level,
        "priority": ApprovalPriority(approval.priority).label,
        "previous_priority": ApprovalPriority(previous_priority).label,
        "required_role": approval.required_role,
        "previous_assignee": previous.get_username() if previous else None,
    }
    ApprovalEvent.objects.create(
        approval=approval, kind=ApprovalEventKind.ESCALATED, actor=actor, data=data, created_at=now
    )
    audit_record(
        actor=Actor.for_user(user), verb="approval.escalated", target_type="approval", target_id=approval.pk, data=data
    )
    publish(
        "approval.escalated",
        approval_id=approval.pk,
        task_id=approval.task_id,
        agent_id=approval.task.agent_id,
        level=level,
        priority=data["priority"],
        required_role=approval.required_role,
    )
    # The person escalating does not get it back (nor does the assignee who had it).
    excluded = tuple(pk for pk in (getattr(actor, "pk", None), previous.pk if previous else None) if pk is not None)
    assign_next(approval=approval, now=now, exclude=excluded, notice=Notice.ASSIGNED)
