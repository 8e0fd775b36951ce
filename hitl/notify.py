"""Notifications to reviewers (new assignment, reminder, breach): a live event and an e-mail
through Django's mail backend, each sent once, after the transaction that caused it commits."""

from __future__ import annotations

import logging
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction

from agents.events import publish
from hitl.models import ApprovalRequest

logger = logging.getLogger(__name__)


class Notice(StrEnum):
    ASSIGNED = "assigned"
    REMINDER = "reminder"
    BREACHED = "breached"


_SUBJECTS: dict[Notice, str] = {
    Notice.ASSIGNED: "Approval request {id} is assigned to you: {tool}",
    Notice.REMINDER: "Reminder: approval request {id} ({tool}) is due {due}",
    Notice.BREACHED: "Approval request {id} ({tool}) missed its deadline and was escalated to you",
}


def _task_and_agent(approval_id: int) -> tuple[int | None, int | None]:
    row = ApprovalRequest.objects.filter(pk=approval_id).values_list("task_id", "task__agent_id").first()
    return (row[0], row[1]) if row is not None else (None, None)


def decision_publish(*, approval: ApprovalRequest, agent_id: int | None = None) -> None:
    """Inside the caller's transaction: after it commits, tell the live stream that ``approval``
    left the queues (decided by a reviewer, or closed by the SLA ladder). ``agent_id``, when
    the caller has it, spares the stream reading it from the task after commit."""
    publish(
        "approval.decided",
        approval_id=approval.pk,
        task_id=approval.task_id,
        status=str(approval.status),
        decided_by=approval.decided_by.get_username() if approval.decided_by is not None else None,
        **({"agent_id": agent_id} if agent_id is not None else {}),
    )


def assignment_publish(*, approval: ApprovalRequest, kind: str) -> None:
    """Inside the caller's transaction: after it commits, tell the live stream that a reviewer
    claimed (``assigned``) or gave back (``released``) ``approval``, without e-mailing anyone:
    the reviewer did it themselves."""
    publish(f"approval.{kind}", approval_id=approval.pk, task_id=approval.task_id, user_id=approval.assignee_id)


def _send(*, notice: Notice, email: str, approval_id: int, tool: str, due: str) -> None:
    subject = _SUBJECTS[notice].format(id=approval_id, tool=tool, due=due)
    body = f"{subject}.\n\nOpen it in the admin: /admin/hitl/approvalrequest/{approval_id}/decide/\n"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
    except Exception:  # a mail server that is down must not undo or repeat a committed step
        logger.exception("approval.notify_failed", extra={"approval_id": approval_id, "notice": notice.value})


def reviewer_notify(*, notice: Notice, user: User | None, approval_id: int, tool: str, due: str) -> None:
    """Inside the caller's transaction: after it commits, publish the live event and e-mail
    ``user`` (when they have an address). Nothing is sent if the transaction rolls back.

    The event names the request's task and agent: the live stream forwards it only to users who
    may review that agent, like every other approval event."""
    if user is None:
        return
    task_id, agent_id = _task_and_agent(approval_id)
    publish(
        f"approval.{notice.value}",
        approval_id=approval_id,
        task_id=task_id,
        agent_id=agent_id,
        user_id=user.pk,
        tool=tool,
        due=due,
    )
    email = user.email
    if email:
        transaction.on_commit(lambda: _send(notice=notice, email=email, approval_id=approval_id, tool=tool, due=due))
