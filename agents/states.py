"""The task state machine: the only module that changes ``Task.state``."""

from __future__ import annotations

import functools

from django.db import connection
from django.utils import timezone

from agents.exceptions import IllegalTransition
from agents.events import publish
from agents.models import Task, TaskState as S
from config.db import prepared_cursor
from governance.actors import Actor
from governance.services import AUDIT_APPEND_CALL, audit_append_params

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


def task_transition(*, task: Task, to: str, actor: Actor, reason: str = "", save: bool = True,
                    also: list[str] | None = None) -> None:
    """Move a locked task to ``to``: validate, record a TaskEvent and an audit event, publish
    after commit. The caller holds the row lock and owns the transaction; ``also`` names
    other fields it changed, saved in the same UPDATE (``save=False``: the caller saves the
    task itself). Raises IllegalTransition (409)."""
    source = task.state
    if to not in TRANSITIONS[source]:
        raise IllegalTransition(f"task {task.pk} cannot go from {source} to {to}", task=task.pk,
                                state=source, to=to)
    task.state = to
    now = timezone.now()
    if to == S.ACKED and task.started_at is None:
        task.started_at = now
    if to in (S.COMPLETED, S.ESCALATED, S.CANCELLED, S.VERIFIED):
        task.finished_at = now
    reason = reason[:500]
    params = {
        "task_id": task.pk, "from_state": source, "to_state": to, "reason": reason,
        "actor": f"{actor.type}:{actor.label}"[:200], "attempt": task.attempt, "now": now,
        **audit_append_params(actor=actor, verb="task.transition", target_type="task", target_id=task.pk,
                              data={"from": source, "to": to, "reason": reason, "agent_id": task.agent_id},
                              correlation_id=task.correlation_id or None),
    }
    fields: tuple[str, ...] = ()
    if save:
        task.updated_at = now
        fields = tuple(dict.fromkeys(["state", "started_at", "finished_at", "updated_at", *(also or [])]))
        for name in fields:
            field = Task._meta.get_field(name)
            params[f"set_{name}"] = field.get_db_prep_save(getattr(task, field.attname), connection)
    with prepared_cursor() as cursor:
        cursor.execute(_transition_sql(fields), params)
        if cursor.fetchone() is None:
            raise Task.DoesNotExist(f"task {task.pk} no longer exists")
    publish("task.state", task_id=task.pk, agent_id=task.agent_id, from_state=source, to_state=to, reason=reason)


@functools.cache
def _transition_sql(fields: tuple[str, ...]) -> str:
    """One statement per transition: the task's UPDATE of ``fields`` (none: the caller saves
    it), its TaskEvent and its audit event, each written only after the one before."""
    event = ("INSERT INTO agents_taskevent (task_id, from_state, to_state, reason, actor, attempt, created_at)"
             " SELECT {task}, %(from_state)s, %(to_state)s, %(reason)s, %(actor)s, %(attempt)s, %(now)s {source}"
             " RETURNING task_id")
    if fields:
        assignments = ", ".join(f'"{Task._meta.get_field(name).column}" = %(set_{name})s' for name in fields)
        head = (f"WITH moved AS (UPDATE agents_task SET {assignments} WHERE id = %(task_id)s RETURNING id),"
                f" event AS ({event.format(task='id', source='FROM moved')}),")
    else:
        head = f"WITH event AS ({event.format(task='%(task_id)s', source='')}),"
    return head + f" audit AS (SELECT {AUDIT_APPEND_CALL} AS appended FROM event) SELECT (appended).seq FROM audit"
