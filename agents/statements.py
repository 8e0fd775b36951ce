"""The SQL of the engine's hot path, in one place.

Each statement has named placeholders (``%(name)s``) and one function here that builds its
parameters; callers use that function, and tests/agents/test_statements.py checks that the
names it supplies are exactly the statement's placeholders (psycopg would ignore an extra one
and fail only at run time on a missing one). The statements are plain SQL built once at
import: compiling the equivalent ORM queries cost more CPU per step than the round trips. They
go through ``config.db.prepared_cursor``, prepared on the server once per connection.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Field

from agents.models import Agent, Task, TaskState
from governance.services import AUDIT_APPEND_CALL
from tenants.usage import upsert_sql, usage_day, usage_params

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Statement:
    name: str
    sql: str

    @property
    def placeholders(self) -> frozenset[str]:
        return frozenset(_PLACEHOLDER.findall(self.sql))


# ------------------------------------------------------------------------- the snapshot
TASK_FIELDS = tuple(Task._meta.concrete_fields)
AGENT_FIELDS = tuple(Agent._meta.concrete_fields)

# Everything a step reads, in one round trip: the task and its agent, then (in this order)
# the tenant's status (fresh at every step), the agent's granted tools, whether the task ever
# waited for a decision (only then may a decided approval be due at this step), and the
# latest step of each action, oldest first, as [index, action, arguments, result, decision].
# That is all a blueprint reads of the steps so far (StepContext.step, StepContext.count):
# the other steps are never loaded or sent, so a step of a long task costs about what an early
# one does (the server still sorts the task's (action, index) pairs to find the latest, some
# 0.5 µs per earlier step). ARRAY(...) keeps that a one-off: joined instead, a plan made
# before the table has statistics re-sorts them for every step of the task.
SNAPSHOT = Statement(
    "snapshot",
    (
        "SELECT "
        + ", ".join(f't."{f.column}"' for f in TASK_FIELDS)
        + ", "
        + ", ".join(f'a."{f.column}"' for f in AGENT_FIELDS)
        + ", (SELECT status FROM public.tenants_tenant WHERE schema_name = current_schema())"
        + ", ARRAY(SELECT tl.name FROM agents_tool tl JOIN agents_agent_tools g ON g.tool_id = tl.id"
        " WHERE g.agent_id = a.id)" + ", EXISTS (SELECT 1 FROM agents_taskevent e WHERE e.task_id = t.id"
        f" AND e.to_state = '{TaskState.AWAITING_APPROVAL.value}')"
        + ", (SELECT coalesce(jsonb_agg(jsonb_build_array(s.index, s.action, s.arguments, s.result, s.decision)"
        " ORDER BY s.index), '[]'::jsonb) FROM agents_step s WHERE s.task_id = t.id AND s.index = ANY (ARRAY("
        "SELECT DISTINCT ON (l.action) l.index FROM agents_step l WHERE l.task_id = t.id"
        " ORDER BY l.action, l.index DESC)))"
        # What the approval policies say, from the app that owns them (agents.hooks.ApprovalGate):
        # a function of the tenant's schema that answers NULL until such an app replaces it.
        ", vigil_gate_rules()"
        " FROM agents_task t JOIN agents_agent a ON a.id = t.agent_id WHERE t.id = %(task_id)s"
    ),
)


def snapshot_params(*, task_id: int) -> dict[str, Any]:
    return {"task_id": task_id}


# ------------------------------------------------------------------------- the lease claim
# Lock the row and move the lease on, only if the message's attempt still holds it and the
# state is the one planned from (see agents.lease.lease_claim).
CLAIM = Statement(
    "claim",
    (
        "UPDATE agents_task SET attempt = %(new_attempt)s, ack_deadline = %(deadline)s, updated_at = %(now)s"
        " WHERE id = %(task_id)s AND attempt = %(attempt)s AND state = %(state)s"
    ),
)


def claim_params(
    *, task_id: int, attempt: int, new_attempt: int, deadline: datetime, now: datetime, state: str
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "attempt": attempt,
        "new_attempt": new_attempt,
        "deadline": deadline,
        "now": now,
        "state": state,
    }


# ------------------------------------------------------------------------- the step statement
# A whole step in one statement (its own transaction, or part of the caller's): move the
# lease on if the message still holds it, then write the effect (and its outbox message), the
# step and, last, its audit event. Each write selects from the one before, so a message that
# lost its lease writes nothing and gets no row back, and the audit chain's lock is taken last.
# The effect key is not "ON CONFLICT DO NOTHING": it belongs to this task and step (or to this
# approval, which resumes one step), so a taken key would mean the step was already written,
# and the statement fails rather than record it twice.
_STEP_CLAIM = (
    "WITH claim AS (UPDATE agents_task SET attempt = %(new_attempt)s, ack_deadline = %(deadline)s,"
    " updated_at = %(now)s WHERE id = %(task_id)s AND attempt = %(attempt)s"
    f" AND state = '{TaskState.IN_PROGRESS.value}' RETURNING id AS task_id),"
)
# The effect row takes the idempotency key; the outbox row, written only with it and only
# when the tool described a message, is what carries the effect out.
_STEP_EFFECT = (
    " effect AS (INSERT INTO agents_effect (idempotency_key, task_id, step_index, tool, arguments_hash, result,"
    " created_at) SELECT %(effect_key)s, task_id, %(index)s, %(effect_tool)s, %(effect_arguments_hash)s,"
    " %(effect_result)s::jsonb, now() FROM claim RETURNING id, task_id),"
    " outbox AS (INSERT INTO agents_outboxmessage (effect_id, kind, payload, created_at)"
    " SELECT id, %(outbox_kind)s::text, %(outbox_payload)s::jsonb, now() FROM effect"
    " WHERE %(outbox_kind)s::text IS NOT NULL),"
)
_STEP_WRITE = (
    " step AS (INSERT INTO agents_step (task_id, index, action, arguments, result, decision, reasoning, tokens,"
    " cost_usd, latency_ms, created_at) SELECT task_id, %(index)s, %(action)s, %(arguments)s::jsonb,"
    " %(result)s::jsonb, %(decision)s, %(reasoning)s, %(tokens)s, %(cost_usd)s, %(latency_ms)s, now()"
    " FROM {source} RETURNING task_id),"
    # The function is in the select list so that it runs once per written step: not at all
    # on a lost lease. (A SELECT in a WITH runs only when read, hence the last line.)
    f" audit AS (SELECT {AUDIT_APPEND_CALL} AS appended FROM step),"
    # The tenant's usage of the day and model (tenants.usage), after the audit append: the
    # audit lock serializes the tenant's writers, so this row is never waited for.
    f" usage AS ({upsert_sql(source='FROM audit')})"
    " SELECT (appended).seq FROM audit"
)
STEP = Statement("step", _STEP_CLAIM + _STEP_WRITE.format(source="claim"))
STEP_WITH_EFFECT = Statement("step_with_effect", _STEP_CLAIM + _STEP_EFFECT + _STEP_WRITE.format(source="effect"))


def step_params(
    *,
    task_id: int,
    attempt: int,
    new_attempt: int,
    deadline: datetime,
    now: datetime,
    index: int,
    action: str,
    arguments: str,
    result: str,
    decision: str,
    reasoning: str,
    tokens: int,
    cost_usd: Decimal | float | int,
    latency_ms: float,
    audit: Mapping[str, Any],
    effect: Mapping[str, Any] | None,
    usage_model: str = "offline",
    tokens_in: int = 0,
    tokens_out: int = 0,
) -> dict[str, Any]:
    """Parameters of STEP (``effect`` None) or STEP_WITH_EFFECT (``effect``:
    ``PlannedEffect.params()``). ``arguments`` and ``result`` are JSON text; ``audit`` is
    ``governance.services.audit_append_params(...)``. The step is counted in the tenant's usage
    of ``now``'s day under ``usage_model``, with its tokens and cost."""
    return {
        "task_id": task_id,
        "attempt": attempt,
        "new_attempt": new_attempt,
        "deadline": deadline,
        "now": now,
        "index": index,
        "action": action,
        "arguments": arguments,
        "result": result,
        "decision": decision,
        "reasoning": reasoning,
        "tokens": tokens,
        "cost_usd": cost_usd,
        "latency_ms": latency_ms,
        **audit,
        **(effect or {}),
        **usage_params(
            model=usage_model,
            day=usage_day(now),
            steps=1,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd,
        ),
    }


# ------------------------------------------------------------------------- transitions
def _column(name: str) -> str:
    field = Task._meta.get_field(name)
    if not isinstance(field, Field):
        raise TypeError(f"Task.{name} is not a column")
    return field.column


@functools.cache
def transition(fields: tuple[str, ...]) -> Statement:
    """One statement per state transition (agents.states.task_transition): the task's UPDATE of
    ``fields`` (none: the caller saves the task itself), its TaskEvent and its audit event,
    each written only after the one before."""
    event = (
        "INSERT INTO agents_taskevent (task_id, from_state, to_state, reason, actor, attempt, created_at)"
        " SELECT {task}, %(from_state)s, %(to_state)s, %(reason)s, %(actor)s, %(attempt)s, %(now)s {source}"
        " RETURNING task_id"
    )
    if fields:
        assignments = ", ".join(f'"{_column(name)}" = %(set_{name})s' for name in fields)
        head = (
            f"WITH moved AS (UPDATE agents_task SET {assignments} WHERE id = %(task_id)s RETURNING id),"
            f" event AS ({event.format(task='id', source='FROM moved')}),"
        )
    else:
        head = f"WITH event AS ({event.format(task='%(task_id)s', source='')}),"
    sql = head + f" audit AS (SELECT {AUDIT_APPEND_CALL} AS appended FROM event) SELECT (appended).seq FROM audit"
    return Statement("transition:" + ",".join(fields), sql)


def transition_params(
    *,
    task_id: int,
    from_state: str,
    to_state: str,
    reason: str,
    actor: str,
    attempt: int,
    now: datetime,
    audit: Mapping[str, Any],
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Parameters of ``transition(tuple(values))``: ``values`` are the task's new column values
    by field name, ready for the database (``Field.get_db_prep_save``)."""
    return {
        "task_id": task_id,
        "from_state": from_state,
        "to_state": to_state,
        "reason": reason,
        "actor": actor,
        "attempt": attempt,
        "now": now,
        **audit,
        **{f"set_{name}": value for name, value in values.items()},
    }


# The fixed statements, for the test that checks their placeholders.
STATEMENTS = (SNAPSHOT, CLAIM, STEP, STEP_WITH_EFFECT)
