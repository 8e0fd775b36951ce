"""Reads of approval requests."""

from __future__ import annotations

import json

from agents.hooks import DecidedApproval
from config.connection import connection
from config.db import prepared_cursor
from hitl.binding import action_hash
from hitl.models import ApprovalStatus

# Plain SQL, prepared once per connection: the engine asks at every step of a task that ever
# waited for a decision, so this read is on the hot path of such tasks.
_DECIDED_SQL = (
    "SELECT id, tool, arguments, reasoning, status, decision_note, action_hash FROM hitl_approvalrequest"
    " WHERE task_id = %(task_id)s AND step_index = %(step_index)s"
    f" AND status IN ('{ApprovalStatus.APPROVED.value}', '{ApprovalStatus.REJECTED.value}')"
    " ORDER BY decided_at DESC, id DESC LIMIT 1"
)


def approval_decided_for(*, task_id: int, step_index: int) -> DecidedApproval | None:
    """The latest approved or rejected request for step ``step_index`` of the task, as the
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
        approved=status == ApprovalStatus.APPROVED,
        note=note,
        intact=intact,
    )
