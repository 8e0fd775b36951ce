"""The task state machine: the only module that changes ``Task.state``."""

from __future__ import annotations

from django.db.models import Field
from django.utils import timezone

from agents.events import publish
from agents.exceptions import IllegalTransition
from agents.models import Task
from agents.models import TaskState as S
from agents.statements import transition, transition_params
from config.connection import connection
from config.db import prepared_cursor
from governance.actors import Actor
from governance.services import audit_append_params

TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.ACKED, S.RETRYING, S.ESCALATED, S.CANCELLED}),
    S.ACKED: frozenset({S.IN_PROGRESS, S.RETRYING, S.ESCALATED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.AWAITING_APPROVAL, S.COMPLETED, S.RETRYING, S.ESCALATED, S.CANCELLED}),
    S.AWAITING_APPROVAL: frozenset({S.IN_PROGRESS, S.ESCALATED, S.CANCELLED}),
    S.RETRYING: frozenset({S.ACKED, S.ESCALATED, S.CANCELLED}),
    S.COMPLETED: frozenset({S.VERIFIED, S.ESCALATED}),
    S.ESCALATED: frozenset({S.QUEUED, S.COMPLETED, S.CANCELLED}),
    S.VERIFIED: frozenset(),
    S.CANCELLED: frozenset(),
}
FINAL = frozenset({S.VERIFIED, S.CANCELLED})
# States in which a worker message may advance the task.
RUNNABLE = frozenset({S.ASSIGNED, S.ACKED, S.IN_PROGRESS, S.RETRYING})
# States the ack-deadline sweeper watches.
LEASED = RUNNABLE


def task_transition(
    *, task: Task, to: str, actor: Actor, reason: str = "", save: bool = True, also: list[str] | None = None
) -> None:
    """Move a locked task to ``to``: validate, record a TaskEvent and an audit event, publish
    after commit. The caller holds the row lock and owns the transaction; ``also`` names
    other fields it changed, saved in the same UPDATE (``save=False``: the caller saves the
    task itself). Raises IllegalTransition (409)."""
    source = task.state
    if to not in TRANSITIONS[source]:
        raise IllegalTransition(f"task {task.pk} cannot go from {source} to {to}", task=task.pk, state=source, to=to)
    task.state = to
    now = timezone.now()
    if to == S.ACKED and task.started_at is None:
        task.started_at = now
    if to in (S.COMPLETED, S.ESCALATED, S.CANCELLED, S.VERIFIED):
        task.finished_at = now
    reason = reason[:500]
    values: dict[str, object] = {}
    if save:
        task.updated_at = now
        for name in dict.fromkeys(["state", "started_at", "finished_at", "updated_at", *(also or [])]):
            field = Task._meta.get_field(name)
            if not isinstance(field, Field):
                raise TypeError(f"Task.{name} is not a column")
            values[name] = field.get_db_prep_save(getattr(task, field.attname), connection)
    params = transition_params(
        task_id=task.pk,
        from_state=source,
        to_state=to,
        reason=reason,
        actor=f"{actor.type}:{actor.label}"[:200],
        attempt=task.attempt,
        now=now,
        values=values,
        audit=audit_append_params(
            actor=actor,
            verb="task.transition",
            target_type="task",
            target_id=task.pk,
            data={"from": source, "to": to, "reason": reason, "agent_id": task.agent_id},
            correlation_id=task.correlation_id or None,
        ),
    )
    with prepared_cursor() as cursor:
        cursor.execute(transition(tuple(values)).sql, params)
        if cursor.fetchone() is None:
            raise Task.DoesNotExist(f"task {task.pk} no longer exists")
    publish("task.state", task_id=task.pk, agent_id=task.agent_id, from_state=source, to_state=to, reason=reason)
