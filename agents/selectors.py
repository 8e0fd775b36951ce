"""Reads of agents and tasks: they take ids (the connection's schema is the tenant's) and never
write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Field, JSONField, Model
from django.utils import timezone

from agents.blueprints import StepView
from agents.models import Agent, AgentStatus, Task
from agents.statements import AGENT_FIELDS, SNAPSHOT, TASK_FIELDS, snapshot_params
from agents.states import LEASED
from config.connection import connection
from config.db import prepared_cursor


@dataclass(frozen=True)
class Snapshot:
    """What a step needs to know, read in one round trip (agents.statements.SNAPSHOT)."""

    task: Task  # with its agent
    tenant_status: str
    granted: frozenset[str]  # names of the tools the agent may use
    gated: bool  # the task waited for a decision at some point: a decided approval may be due
    latest: tuple[StepView, ...]  # the latest step of each action, oldest first
    count: int  # steps written so far; the next step's index
    gate_rules: Any = None  # the approval policies in force (vigil_gate_rules()), None without any app's

    @property
    def agent(self) -> Agent:
        return self.task.agent


def _from_row(model: type[Model], fields: Sequence[Field[Any, Any]], values: Sequence[Any]) -> Any:
    # jsonb arrives as text (Django's loader); the ORM would parse it in from_db_value.
    parsed = [
        json.loads(v) if isinstance(f, JSONField) and isinstance(v, str) else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], parsed)


def task_snapshot(*, task_id: int) -> Snapshot | None:
    """The task with its agent, the tenant's status, the agent's granted tools and the latest
    step of each action; None when there is no such task."""
    with prepared_cursor() as cursor:
        cursor.execute(SNAPSHOT.sql, snapshot_params(task_id=task_id))
        row = cursor.fetchone()
    if row is None:
        return None
    n, m = len(TASK_FIELDS), len(TASK_FIELDS) + len(AGENT_FIELDS)
    task = _from_row(Task, TASK_FIELDS, row[:n])
    task.agent = _from_row(Agent, AGENT_FIELDS, row[n:m])
    tenant_status, granted, gated, steps, gate_rules = row[m:]
    latest = tuple(StepView(*step) for step in (json.loads(steps) if isinstance(steps, str) else steps))
    return Snapshot(
        task=task,
        tenant_status=tenant_status,
        granted=frozenset(granted),
        gated=gated,
        latest=latest,
        count=latest[-1].index + 1 if latest else 0,
        gate_rules=json.loads(gate_rules) if isinstance(gate_rules, str) else gate_rules,
    )


def tasks_overdue(*, now: datetime | None = None) -> list[tuple[int, int]]:
    """(task id, attempt) of tasks whose ack deadline passed while a worker held them."""
    now = now or timezone.now()
    # A paused agent's tasks are held on purpose, not lost: resuming the agent re-sends them.
    return list(
        Task.objects.filter(state__in=LEASED, ack_deadline__lt=now)
        .exclude(agent__status=AgentStatus.PAUSED)
        .values_list("pk", "attempt")
    )


def task_state_get(*, task_id: int) -> str | None:
    """The task's state now (None: no such task), without loading the task."""
    return Task.objects.filter(pk=task_id).values_list("state", flat=True).first()


def task_with_history_get(*, task_id: int) -> Task:
    """The task with its steps and transitions, for a detailed answer. Raises Task.DoesNotExist."""
    return Task.objects.select_related("agent").prefetch_related("steps", "events").get(pk=task_id)
