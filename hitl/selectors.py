"""Reads of approval requests."""

from __future__ import annotations

import json

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from agents.hooks import DecidedApproval
from config.connection import connection
from config.db import prepared_cursor
from governance import access
from governance.access import Capability
from hitl.binding import action_hash
from hitl.models import DECIDED_STATUSES, OPEN_STATUSES, ApprovalRequest, ApprovalStatus

# Plain SQL, prepared once per connection: the engine asks at every step of a task that ever
# waited for a decision, so this read is on the hot path of such tasks.
_DECIDED_SQL = (
    "SELECT id, tool, arguments, reasoning, status, decision_note, action_hash FROM hitl_approvalrequest"
    " WHERE task_id = %(task_id)s AND step_index = %(step_index)s"
    " AND status IN (" + ", ".join(f"'{status}'" for status in DECIDED_STATUSES) + ")"
    " ORDER BY decided_at DESC, id DESC LIMIT 1"
)


def approval_decided_for(*, task_id: int, step_index: int) -> DecidedApproval | None:
    """The latest decided request (approved, edited, rejected or expired) for step ``step_index`` of the task, as the
    engine runs it (registered as agents.hooks' ``decided``, see hitl.apps). The binding is
    recomputed here, just before the worker runs the action (F-HITL-7)."""
    with prepared_cursor() as cursor:
        cursor.execute(_DECIDED_SQL, {"task_id": task_id, "step_index": step_index})
        row = cursor.fetchone()
    if row is None:
        return None
    pk, tool, arguments, reasoning, status, note, stored_hash = row
    # jsonb arrives as text on this cursor (Django's loader), as for the engine's snapshot.
    arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
    intact = action_hash(tool=tool, arguments=arguments, schema=connection.schema_name) == stored_hash
    return DecidedApproval(
        id=pk,
        tool=tool,
        arguments=arguments,
        reasoning=reasoning,
        approved=status in (ApprovalStatus.APPROVED, ApprovalStatus.EDITED),
        note=note,
        intact=intact,
    )


QUEUE_ORDER = ("-priority", "due_at", "id")


def approval_queue_for(
    *,
    user: User | AnonymousUser,
    statuses: tuple[str, ...] = OPEN_STATUSES,
    priority: int | None = None,
    agent: str | None = None,
    assignee: str | None = None,
) -> QuerySet[ApprovalRequest]:
    """The requests ``user`` may see (governance.access), most urgent first: by priority, then
    deadline. ``assignee``: ``me``, ``none`` (unassigned) or a username."""
    query = ApprovalRequest.objects.filter(status__in=statuses).select_related("task__agent", "assignee", "decided_by")
    if priority is not None:
        query = query.filter(priority=priority)
    if agent:
        query = query.filter(task__agent__name=agent)
    if assignee == "me":
        query = query.filter(assignee_id=getattr(user, "pk", None))
    elif assignee == "none":
        query = query.filter(assignee__isnull=True)
    elif assignee:
        query = query.filter(assignee__username=assignee)
    return access.scoped(user, Capability.VIEW, query).order_by(*QUEUE_ORDER)
