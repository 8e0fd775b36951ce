"""The task state machine: the only module that changes ``Task.state``."""

from __future__ import annotations

from django.utils import timezone

from agents.exceptions import IllegalTransition
from agents.events import publish
from agents.models import Task, TaskEvent, TaskState as S
from governance.actors import Actor
from governance.services import audit_record

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
    other fields it changed, saved in the same UPDATE. Raises IllegalTransition (409)."""
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
    if save:
        task.save(update_fields=["state", "started_at", "finished_at", "updated_at", *(also or [])])
    TaskEvent.objects.create(task=task, from_state=source, to_state=to, reason=reason[:500],
                             actor=f"{actor.type}:{actor.label}"[:200], attempt=task.attempt)
    audit_record(actor=actor, verb="task.transition", target_type="task", target_id=task.pk,
                 data={"from": source, "to": to, "reason": reason[:500], "agent_id": task.agent_id},
                 correlation_id=task.correlation_id or None)
    publish("task.state", task_id=task.pk, agent_id=task.agent_id, from_state=source, to_state=to, reason=reason)
