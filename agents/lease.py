"""The lease protocol: which message may advance a task, and what happens when none does.

Every message carries the ``attempt`` it was sent for. Each committed step (and every retry,
approval, cancel or resume) bumps ``Task.attempt``, so a duplicate, redelivered or
out-of-date message finds a different attempt and is dropped. A leased task also has an
``ack_deadline``: the message that holds the lease must move it on before then, or beat's
sweeper counts the attempt as failed and re-sends the task (``task_fail``). A held task
(tenant suspended, agent paused) has no deadline; nothing is in flight for it.

The next message is sent after commit (``dispatch``). If the process dies in between, or the
broker cannot be reached, the deadline passes and the sweeper re-sends it.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import KombuError

from agents.models import Task
from agents.models import TaskState as S
from agents.outcomes import Outcome
from agents.statements import CLAIM, claim_params
from agents.states import RUNNABLE, task_transition
from config.connection import connection
from config.db import prepared_cursor
from governance.actors import Actor

logger = logging.getLogger(__name__)


def lease_deadline(*, now: datetime | None = None, countdown: float = 0) -> datetime:
    """When a lease granted at ``now`` (and sent ``countdown`` seconds later) expires."""
    return (now or timezone.now()) + timedelta(seconds=countdown + settings.TASK_ACK_TIMEOUT_SECONDS)


# On Redis a message needs no declared queue (workers declare what they consume), so the
# next-step message skips Celery's declaration; another broker (RabbitMQ) keeps it.
_SEND_OPTIONS: dict[str, Any] = (
    {"declare": []} if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else {}
)


def dispatch(*, task_id: int, attempt: int, countdown: float = 0) -> None:
    """Send the message that advances ``task_id`` at ``attempt``, after the current transaction
    commits (immediately when there is none). A send that fails is logged, not raised: the
    change it follows is committed, and the lease's deadline brings the sweeper."""
    from agents.tasks import advance_task

    kwargs = {"schema": connection.schema_name, "task_id": task_id, "attempt": attempt}
    # kwargsrepr: the plain repr of three scalars, not Celery's size-limited saferepr (about a
    # tenth of the CPU of a send; so is the declaration skipped on Redis, see _SEND_OPTIONS).
    options: dict[str, Any] = {"queue": "steps", "argsrepr": "()", "kwargsrepr": repr(kwargs), **_SEND_OPTIONS}
    if countdown:
        options["countdown"] = countdown

    def send() -> None:
        try:
            advance_task.apply_async(kwargs=kwargs, **options)
        except (KombuError, OSError) as exc:
            # The broker is unreachable. Raising here would report a failure for a change that
            # happened (and a client that retries would submit twice).
            logger.warning("task.send_failed", extra={**kwargs, "error": str(exc)[:200]})

    transaction.on_commit(send)


def lease_renew(task: Task, *, countdown: float = 0) -> None:
    """Give a locked task a new attempt and deadline and send its next message after commit."""
    task.attempt += 1
    task.ack_deadline = lease_deadline(countdown=countdown)
    task.save(update_fields=["attempt", "ack_deadline", "updated_at"])
    dispatch(task_id=task.pk, attempt=task.attempt, countdown=countdown)


def lease_claim(task: Task, attempt: int) -> bool:
    """Inside the step's transaction: lock the row and move the lease on in one statement,
    only if ``attempt`` still holds it and the state is the one planned from. Every change
    to a task bumps its attempt, so a match means the snapshot is still the row."""
    now = timezone.now()
    deadline = lease_deadline(now=now)
    with prepared_cursor() as cursor:
        cursor.execute(
            CLAIM.sql,
            claim_params(
                task_id=task.pk, attempt=attempt, new_attempt=attempt + 1, deadline=deadline, now=now, state=task.state
            ),
        )
        claimed = cursor.rowcount == 1
    if claimed:
        task.attempt, task.ack_deadline = attempt + 1, deadline
    return claimed


def lease_hold(*, task_id: int, attempt: int) -> None:
    """Stop a task at its step boundary (suspended tenant, paused agent): no deadline, so the
    sweeper does not count it as failed; resuming re-sends it, and so does every sweep once
    its tenant and agent are active again."""
    Task.objects.filter(pk=task_id, attempt=attempt).update(ack_deadline=None)


def backoff_seconds(retry: int) -> float:
    """Exponential backoff with full jitter: up to base · 2^(retry-1), capped."""
    ceiling = min(settings.TASK_RETRY_MAX_DELAY, settings.TASK_RETRY_BASE_DELAY * (2 ** max(0, retry - 1)))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


def task_fail(*, task_id: int, attempt: int | None, error: str, actor: Actor | None = None) -> Outcome:
    """Record a failed or timed-out attempt: retry with backoff, or escalate after
    TASK_MAX_RETRIES. A no-op (STALE) when ``attempt`` no longer holds the lease."""
    with transaction.atomic():
        # The task row only, and never its key: the agent row is shared by every task of the
        # agent, and a transaction that holds the audit lock may be waiting at COMMIT to check
        # a foreign key against it (a lock cycle that PostgreSQL breaks by failing one side).
        locked = Task.objects.select_for_update(of=("self",), no_key=True).select_related("agent")
        task = locked.filter(pk=task_id).first()
        if task is None or (attempt is not None and task.attempt != attempt) or task.state not in RUNNABLE:
            return Outcome.STALE
        actor = actor or Actor.system("engine")
        task.retry_count += 1
        task.last_error = error[:2000]
        if task.retry_count > settings.TASK_MAX_RETRIES:
            task.ack_deadline = None
            task.attempt += 1
            task.save(update_fields=["retry_count", "last_error", "ack_deadline", "attempt", "updated_at"])
            task_transition(
                task=task,
                to=S.ESCALATED,
                actor=actor,
                reason=f"gave up after {settings.TASK_MAX_RETRIES} retries: {error}"[:500],
            )
            from agents.limits import tasks_admit  # it imports this module

            tasks_admit(lock=False)  # its slot is free, under the audit lock just taken
            return Outcome.FINISHED
        task.save(update_fields=["retry_count", "last_error", "updated_at"])
        if task.state != S.RETRYING:
            task_transition(task=task, to=S.RETRYING, actor=actor, reason=error[:500])
        lease_renew(task, countdown=backoff_seconds(task.retry_count))
        return Outcome.RETRY
