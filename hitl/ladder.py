"""The SLA ladder, run on the server by a beat job (hitl.tasks.sla_sweep): a reminder at a share
of the SLA, escalation at a breach (priority raised, next tier, reassigned), the terminal
action at the last breach. Every step is taken exactly once, also when two sweeps overlap:
each one locks its rows with SKIP LOCKED and re-checks its condition on the locked row, and
taking the step makes the condition false (``reminded_at`` set, the deadline moved, the
request closed). ``now`` is the caller's clock (the beat job passes the wall clock)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from agents.exceptions import IllegalTransition
from agents.services import task_resume
from governance.actors import Actor
from governance.services import audit_record
from hitl.assignment import approvals_assign_waiting, assign_next, slot_free
from hitl.models import (
    OPEN_STATUSES,
    ApprovalEvent,
    ApprovalEventKind,
    ApprovalPriority,
    ApprovalRequest,
    ApprovalStatus,
)
from hitl.notify import Notice, decision_publish, reviewer_notify
from hitl.policies import LOW_RISK_MAX_LEVEL, ladder_of
from hitl.sla import DEFAULT_LADDER, Ladder, TerminalAction

SLA_ACTOR = Actor.system("sla")


@dataclass(frozen=True)
class SweepCount:
    reminded: int
    escalated: int
    closed: int
    assigned: int


@transaction.atomic(durable=True)
def approvals_remind(*, now: datetime) -> int:
    """Remind the assignee of every open request past its reminder time, once per tier."""
    due = list(
        ApprovalRequest.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(status__in=OPEN_STATUSES, remind_at__lte=now, reminded_at__isnull=True)
        .select_related("assignee")
    )
    for approval in due:
        approval.reminded_at = now
        approval.save(update_fields=["reminded_at"])
        assignee = approval.assignee
        ApprovalEvent.objects.create(
            approval=approval,
            kind=ApprovalEventKind.REMINDED,
            data={"assignee": assignee.get_username() if assignee else None},
            created_at=now,
        )
        audit_record(actor=SLA_ACTOR, verb="approval.reminded", target_type="approval", target_id=approval.pk)
        reviewer_notify(
            notice=Notice.REMINDER,
            user=assignee,
            approval_id=approval.pk,
            tool=approval.tool,
            due=approval.due_at.isoformat(timespec="seconds") if approval.due_at else "",
        )
    return len(due)


def _escalate(approval: ApprovalRequest, *, now: datetime, ladder: Ladder) -> None:
    previous: User | None = approval.assignee
    slot_free(approval)
    level = approval.escalation_level + 1
    previous_priority = approval.priority
    priority = approval.priority
    if ladder.raises_priority(level=level):
        priority = min(approval.priority + 1, ApprovalPriority.CRITICAL)
    approval.escalation_level = level
    approval.priority = priority
    approval.required_role = ladder.tier_role(level=level, current=approval.required_role)
    approval.due_at = ladder.due(priority=priority, start=now)
    approval.remind_at = ladder.remind(priority=priority, start=now)
    approval.reminded_at = None
    approval.breached_at = now
    approval.status = ApprovalStatus.ESCALATED
    approval.assignee = None
    approval.assigned_at = None
    approval.save()
    data = {
        "level": level,
        "priority": ApprovalPriority(priority).label,
        "previous_priority": ApprovalPriority(previous_priority).label,
        "required_role": approval.required_role,
        "previous_assignee": previous.get_username() if previous else None,
    }
    ApprovalEvent.objects.create(approval=approval, kind=ApprovalEventKind.ESCALATED, data=data, created_at=now)
    audit_record(actor=SLA_ACTOR, verb="approval.escalated", target_type="approval", target_id=approval.pk, data=data)
    assign_next(approval=approval, now=now, exclude=(previous.pk,) if previous else (), notice=Notice.BREACHED)


_TERMINAL_STATUS = {
    TerminalAction.EXPIRE: ApprovalStatus.EXPIRED,
    TerminalAction.AUTO_REJECT: ApprovalStatus.REJECTED,
    TerminalAction.AUTO_APPROVE: ApprovalStatus.APPROVED,
}
_TERMINAL_EVENT = {
    ApprovalStatus.EXPIRED: ApprovalEventKind.EXPIRED,
    ApprovalStatus.REJECTED: ApprovalEventKind.REJECTED,
    ApprovalStatus.APPROVED: ApprovalEventKind.APPROVED,
}


def _terminal(approval: ApprovalRequest, ladder: Ladder) -> TerminalAction:
    """The ladder's terminal action, except that only a low-risk action is ever approved by
    the system (hitl.policies.LOW_RISK_MAX_LEVEL): any other expires instead."""
    if ladder.terminal == TerminalAction.AUTO_APPROVE and approval.privilege_level > LOW_RISK_MAX_LEVEL:
        return TerminalAction.EXPIRE
    return ladder.terminal


def _terminate(approval: ApprovalRequest, *, now: datetime, ladder: Ladder) -> None:
    slot_free(approval)
    terminal = _terminal(approval, ladder)
    status = _TERMINAL_STATUS[terminal]
    # The task resumes as not approved: the engine records the step as rejected and goes on. A
    # task that stopped waiting (cancelled, escalated) is left alone: the request just closes.
    with contextlib.suppress(IllegalTransition):
        task_resume(
            task_id=approval.task_id,
            step_index=approval.step_index,
            user=None,
            reason=f"approval {approval.pk} {status}",
        )
    approval.status = status
    approval.breached_at = now
    approval.decided_at = now
    approval.decision_note = f"no decision within the SLA ({terminal})"
    approval.save(update_fields=["status", "breached_at", "decided_at", "decision_note"])
    kind = _TERMINAL_EVENT[status]
    data = {
        "terminal": str(terminal),
        "level": approval.escalation_level,
        **({"policy_version_id": approval.policy_version_id} if approval.policy_version_id else {}),
        **({"ladder_terminal": str(ladder.terminal)} if terminal != ladder.terminal else {}),
    }
    ApprovalEvent.objects.create(approval=approval, kind=kind, data=data, created_at=now)
    audit_record(actor=SLA_ACTOR, verb=f"approval.{status}", target_type="approval", target_id=approval.pk, data=data)
    decision_publish(approval=approval)


def approvals_breach(*, now: datetime, ladder: Ladder = DEFAULT_LADDER, limit: int = 200) -> tuple[int, int]:
    """Take the breach step of every open request past its deadline, each in its own
    transaction: escalate it while the ladder has tiers left, otherwise take the terminal
    action. A request a policy decided follows its policy version's ladder; ``ladder`` is the
    one of the others. Returns (escalated, closed)."""
    escalated = closed = 0
    ids = list(
        ApprovalRequest.objects.filter(status__in=OPEN_STATUSES, due_at__lte=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    for approval_id in ids:
        with transaction.atomic(durable=True):
            approval = (
                ApprovalRequest.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("task", "assignee", "policy_version")
                .filter(pk=approval_id, status__in=OPEN_STATUSES, due_at__lte=now)
                .first()
            )
            if approval is None:
                continue  # taken by an overlapping sweep, or decided meanwhile
            own = ladder_of(approval.policy_version) if approval.policy_version is not None else ladder
            if approval.escalation_level < own.escalations:
                _escalate(approval, now=now, ladder=own)
                escalated += 1
            else:
                _terminate(approval, now=now, ladder=own)
                closed += 1
    return escalated, closed


def approvals_sla_sweep(*, now: datetime | None = None, ladder: Ladder = DEFAULT_LADDER) -> SweepCount:
    """One pass of the ladder over the current schema: reminders, breaches, then assignment of
    requests still waiting for a reviewer."""
    moment = now or timezone.now()
    reminded = approvals_remind(now=moment)
    escalated, closed = approvals_breach(now=moment, ladder=ladder)
    assigned = approvals_assign_waiting(now=moment)
    return SweepCount(reminded=reminded, escalated=escalated, closed=closed, assigned=assigned)
