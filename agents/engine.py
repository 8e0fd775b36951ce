"""Advance one task by one step. Called by the Celery task ``agents.advance_task`` with the
tenant's schema already active.

The lease: every message carries the ``attempt`` it was sent for. Each committed step (and
every retry, approval or cancel) bumps ``Task.attempt``, so a duplicate, redelivered or
out-of-date message finds a different attempt and is dropped. Planning (which may call an
LLM) and running the tool (which only describes its effect) happen before any lock. A plain
step is then one statement: it takes the row lock, re-checks the lease and records the step
with its effect, outbox message and audit event, or writes nothing. The first and last
messages of a task, approvals and escalations run in a short transaction instead. The next
message is sent after commit; if the process dies in between, the ack-deadline sweeper
re-sends it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import JSONField
from django.utils import timezone

from agents.authorization import ALLOW, DENY, authorize
from agents.blueprints import BaseAgent, Decision, StepContext, StepView, blueprint_class
from agents.effects import PlannedEffect, effect_ctes, effect_plan, tool_run
from agents.events import publish
from agents.exceptions import ToolError
from agents.llm import provider_for
from agents.models import Agent, AgentStatus, Task, TaskState as S
from agents.schemas import schema_errors
from agents.states import RUNNABLE, task_transition
from agents.tools import TOOLS, ToolSpec
from config.db import prepared_cursor
from governance.actors import Actor
from governance.context import set_correlation_id
from governance.services import AUDIT_APPEND_CALL, audit_append_params, audit_record
from hitl.binding import action_hash
from hitl.models import ApprovalRequest, ApprovalStatus

logger = logging.getLogger(__name__)

STALE, HELD, STEPPED, WAITING, FINISHED, RETRY, MISSING = (
    "stale", "held", "stepped", "awaiting_approval", "finished", "retry", "missing")


def dispatch(*, task_id: int, attempt: int, countdown: float = 0) -> None:
    """Send the message that advances ``task_id`` at ``attempt``, after the current transaction
    commits (immediately when there is none)."""
    from agents.tasks import advance_task

    kwargs = {"schema": connection.schema_name, "task_id": task_id, "attempt": attempt}
    # kwargsrepr: the plain repr of three scalars, not Celery's size-limited saferepr (about a
    # tenth of the CPU of a send; so is the declaration skipped on Redis, see _SEND_OPTIONS).
    transaction.on_commit(lambda: advance_task.apply_async(
        kwargs=kwargs, countdown=countdown or None, queue="steps", argsrepr="()", kwargsrepr=repr(kwargs),
        **_SEND_OPTIONS))


# On Redis a message needs no declared queue (workers declare what they consume), so the
# next-step message skips Celery's declaration; another broker (RabbitMQ) keeps it.
_SEND_OPTIONS: dict[str, Any] = (
    {"declare": []} if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else {})


def lease_renew(task: Task, *, countdown: float = 0) -> None:
    """Give a locked task a new attempt and deadline and send its next message after commit."""
    task.attempt += 1
    task.ack_deadline = timezone.now() + timedelta(seconds=countdown + settings.TASK_ACK_TIMEOUT_SECONDS)
    task.save(update_fields=["attempt", "ack_deadline", "updated_at"])
    dispatch(task_id=task.pk, attempt=task.attempt, countdown=countdown)


def _actor(agent: Agent) -> Actor:
    return Actor(type="agent", id=str(agent.pk), label=agent.name)


def _context(agent: Agent, task: Task, steps: tuple[StepView, ...], blueprint: BaseAgent) -> StepContext:
    return StepContext(agent=agent.name, task_input=task.input, config=blueprint.config, steps=steps)


# The hot path's reads and the claim are plain SQL built once: compiling the equivalent ORM
# queries cost more CPU per step than the round trips themselves.
_TASK_FIELDS = list(Task._meta.concrete_fields)
_AGENT_FIELDS = list(Agent._meta.concrete_fields)
_SNAPSHOT_SQL = (
    "SELECT " + ", ".join(f't."{f.column}"' for f in _TASK_FIELDS) + ", "
    + ", ".join(f'a."{f.column}"' for f in _AGENT_FIELDS)
    # The tenant's status rides along, fresh at every step.
    + ", (SELECT status FROM public.tenants_tenant WHERE schema_name = current_schema())"
    + ", ARRAY(SELECT tl.name FROM agents_tool tl JOIN agents_agent_tools g ON g.tool_id = tl.id"
    + " WHERE g.agent_id = a.id)"
    # The steps so far, oldest first, as [index, action, arguments, result, decision].
    + ", (SELECT coalesce(jsonb_agg(jsonb_build_array(s.index, s.action, s.arguments, s.result, s.decision)"
    + " ORDER BY s.index), '[]'::jsonb) FROM agents_step s WHERE s.task_id = t.id)"
    + " FROM agents_task t JOIN agents_agent a ON a.id = t.agent_id WHERE t.id = %s"
)
_CLAIM_SQL = ("UPDATE agents_task SET attempt = %s, ack_deadline = %s, updated_at = %s"
              " WHERE id = %s AND attempt = %s AND state = %s")


def _from_row(model: type[Any], fields: list[Any], values: Sequence[Any]) -> Any:
    # jsonb arrives as text (Django's loader); the ORM would parse it in from_db_value.
    parsed = [json.loads(v) if isinstance(f, JSONField) and isinstance(v, str) else v for f, v in zip(fields, values)]
    return model.from_db(connection.alias, [f.attname for f in fields], parsed)


def _snapshot(task_id: int) -> tuple[Task, tuple[StepView, ...]] | None:
    """The task with its agent, the tenant's status, the agent's granted tools and the steps
    so far, in one round trip."""
    with prepared_cursor() as cursor:
        cursor.execute(_SNAPSHOT_SQL, [task_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(_TASK_FIELDS)
    task = _from_row(Task, _TASK_FIELDS, row[:n])
    task.agent = _from_row(Agent, _AGENT_FIELDS, row[n:n + len(_AGENT_FIELDS)])
    task.tenant_status, task.granted = row[-3], row[-2]
    steps = json.loads(row[-1]) if isinstance(row[-1], str) else row[-1]
    return task, tuple(StepView(*step) for step in steps)


def _claim(task: Task, attempt: int) -> bool:
    """Inside the step's transaction: lock the row and move the lease on in one statement,
    only if ``attempt`` still holds it and the state is the one planned from. Every change
    to a task bumps its attempt, so a match means the snapshot is still the row."""
    now = timezone.now()
    deadline = now + timedelta(seconds=settings.TASK_ACK_TIMEOUT_SECONDS)
    with prepared_cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [attempt + 1, deadline, now, task.pk, attempt, task.state])
        claimed = cursor.rowcount == 1
    if claimed:
        task.attempt, task.ack_deadline = attempt + 1, deadline
    return claimed


_STEP_INSERT_SQL = ("INSERT INTO agents_step (task_id, index, action, arguments, result, decision, reasoning, tokens,"
                    " cost_usd, latency_ms, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())")


def _step_record(task: Task, *, index: int, action: str, arguments: dict[str, Any], result: Any, decision: str,
                 reasoning: str = "", tokens: int = 0, cost_usd: Any = 0, latency_ms: float = 0) -> None:
    """Insert the Step row (the unique (task, index) constraint refuses a second one)."""
    with prepared_cursor() as cursor:
        cursor.execute(_STEP_INSERT_SQL, [task.pk, index, action, json.dumps(arguments), json.dumps(result), decision,
                                          reasoning, tokens, cost_usd, latency_ms])


@dataclass(frozen=True)
class PlannedStep:
    """A step decided and, for a tool, run (its effect only described): what the step
    statement writes."""

    action: str
    decision: str
    result: Any
    arguments: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    tokens: int = 0
    cost_usd: Any = 0
    latency_ms: float = 0
    effect: PlannedEffect | None = None
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalNeeded:
    tool: ToolSpec
    required_role: str
    reason: str


def _plan_step(task: Task, blueprint: BaseAgent, ctx: StepContext, decision: Decision,
               index: int) -> PlannedStep | ApprovalNeeded | None:
    """What a "record" or "tool" decision writes, or that its tool needs an approval first.
    None for the other decisions (finish, escalate)."""
    if decision.kind == "record":
        llm, result = decision.llm, blueprint.execute_step(decision, ctx)
        if llm is None:
            return PlannedStep(action=decision.action, decision="record", result=result, reasoning=decision.reasoning)
        return PlannedStep(action=decision.action, decision="record", result=result, reasoning=decision.reasoning,
                           tokens=llm.tokens, cost_usd=llm.cost_usd, latency_ms=llm.latency_ms,
                           audit={"model": llm.model, "tokens": llm.tokens, "cost_usd": str(llm.cost_usd)})
    if decision.kind != "tool":
        return None
    spec = TOOLS.get(decision.action)
    if spec is None:
        raise ToolError(f"unknown tool {decision.action!r}")
    verdict = authorize(agent=task.agent, tool=spec, granted=set(task.granted))
    if verdict.outcome == DENY:
        return PlannedStep(action=spec.name, decision="denied", result={"denied": verdict.reason},
                           arguments=decision.arguments, reasoning=decision.reasoning,
                           audit={"reason": verdict.reason})
    if verdict.outcome != ALLOW:
        return ApprovalNeeded(tool=spec, required_role=verdict.required_role, reason=verdict.reason)
    result, effect = effect_plan(tool=spec, arguments=decision.arguments,
                                 idempotency_key=f"task:{task.pk}:step:{index}")
    # The key is new: the step statement writes it with the step, and a message that finds
    # the step written finds the lease moved on too.
    return PlannedStep(action=spec.name, decision="allow", result=result, arguments=decision.arguments,
                       reasoning=decision.reasoning, effect=effect, audit={"reused_effect": False})


# A whole step in one statement (its own transaction, or part of the caller's): move the
# lease on if the message still holds it, then write the effect (and its outbox message), the
# step and, last, its audit event. Each write selects from the one before, so a message that
# lost its lease writes nothing and gets no row back, and the audit chain's lock is taken last.
# The effect key is not "ON CONFLICT DO NOTHING" here: it belongs to this task and step
# index, so a taken key would mean the step was already written, and the statement fails
# rather than record it twice.
_STEP_CLAIM = (
    "WITH claim AS (UPDATE agents_task SET attempt = %(new_attempt)s, ack_deadline = %(deadline)s,"
    " updated_at = %(now)s WHERE id = %(task_id)s AND attempt = %(attempt)s AND state = 'in_progress'"
    " RETURNING id AS task_id),"
)
_STEP_EFFECT = " " + effect_ctes(source="claim") + ","
_STEP_WRITE = (
    " step AS (INSERT INTO agents_step (task_id, index, action, arguments, result, decision, reasoning, tokens,"
    " cost_usd, latency_ms, created_at) SELECT task_id, %(index)s, %(action)s, %(arguments)s::jsonb,"
    " %(result)s::jsonb, %(decision)s, %(reasoning)s, %(tokens)s, %(cost_usd)s, %(latency_ms)s, now()"
    " FROM {source} RETURNING task_id),"
    # The function is in the select list so that it runs once per written step: not at all
    # on a lost lease. (A SELECT in a WITH runs only when read, hence the last line.)
    f" audit AS (SELECT {AUDIT_APPEND_CALL} AS appended FROM step)"
    " SELECT (appended).seq FROM audit"
)
_STEP_SQL = {False: _STEP_CLAIM + _STEP_WRITE.format(source="claim"),
             True: _STEP_CLAIM + _STEP_EFFECT + _STEP_WRITE.format(source="effect")}


def _step_commit(task: Task, step: PlannedStep, *, attempt: int, new_attempt: int, index: int) -> bool:
    """Write ``step`` (see the statement above) if ``attempt`` holds the task's lease, moving
    the lease to ``new_attempt``. False, with nothing written, when it no longer does."""
    actor = _actor(task.agent)
    audit = audit_append_params(actor=actor, verb="agent.step", target_type="task", target_id=task.pk,
                                data={"index": index, "action": step.action, "decision": step.decision,
                                      **step.audit},
                                correlation_id=task.correlation_id or None)
    now = timezone.now()
    deadline = now + timedelta(seconds=settings.TASK_ACK_TIMEOUT_SECONDS)
    params = {
        "task_id": task.pk, "attempt": attempt, "new_attempt": new_attempt, "deadline": deadline, "now": now,
        "index": index, "action": step.action, "arguments": json.dumps(step.arguments),
        "result": json.dumps(step.result), "decision": step.decision, "reasoning": step.reasoning,
        "tokens": step.tokens, "cost_usd": step.cost_usd, "latency_ms": step.latency_ms,
        **audit,
        **(step.effect.params() if step.effect else {}),
    }
    with prepared_cursor() as cursor:
        cursor.execute(_STEP_SQL[step.effect is not None], params)
        written = cursor.fetchone() is not None
    if written:
        task.attempt, task.ack_deadline = new_attempt, deadline
    return written


def advance(*, task_id: int, attempt: int) -> str:
    """Run the next step of a task if ``attempt`` still holds its lease. Returns what
    happened (stale, held, stepped, awaiting_approval, finished, retry, missing)."""
    snapshot = _snapshot(task_id)
    if snapshot is None:
        return MISSING
    task, steps = snapshot
    if task.attempt != attempt or task.state not in RUNNABLE:
        logger.info("step.stale", extra={"task_id": task_id, "attempt": attempt, "current": task.attempt})
        return STALE
    set_correlation_id(task.correlation_id or None)
    agent = task.agent
    if task.tenant_status != "active" or agent.status != AgentStatus.ENABLED:
        # Suspended tenant or paused agent: stop at this step boundary. A held task has no
        # deadline (the sweeper must not count it as failed); resuming re-sends it, and so
        # does every sweep once its tenant and agent are active again.
        Task.objects.filter(pk=task_id, attempt=attempt).update(ack_deadline=None)
        return HELD
    index = len(steps)
    approval = None
    if task.context.get("decided_approval"):
        approval = ApprovalRequest.objects.filter(pk=task.context["decided_approval"], step_index=index).first()
    try:
        blueprint = blueprint_class(agent.blueprint)(config=agent.config, provider=provider_for(agent.model_settings))
        ctx = _context(agent, task, steps, blueprint)
        decision = planned = None
        if approval is None:
            decision = (blueprint.plan(ctx) if blueprint.should_continue(ctx)
                        else Decision.escalate(f"stopped after {len(steps)} steps (max_iterations)"))
            planned = _plan_step(task, blueprint, ctx, decision, index)
        if isinstance(planned, PlannedStep) and task.state == S.IN_PROGRESS:
            # The common step: one statement, which is its own transaction (inside a caller's
            # transaction, a savepoint keeps that transaction usable should the statement fail).
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                written = _step_commit(task, planned, attempt=attempt, new_attempt=attempt + 1, index=index)
            return _next(task, index) if written else STALE
        with transaction.atomic():
            if not _claim(task, attempt):
                return STALE
            return _apply(task, blueprint, decision, planned, approval, index)
    except Exception as exc:  # any failure of a step is retried with backoff, then escalated
        logger.warning("step.failed", extra={"task_id": task_id, "attempt": attempt, "error": str(exc)[:200]},
                       exc_info=not isinstance(exc, ToolError))
        task_fail(task_id=task_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        return RETRY


def _apply(task: Task, blueprint: BaseAgent, decision: Decision | None, planned: PlannedStep | ApprovalNeeded | None,
           approval: ApprovalRequest | None, index: int) -> str:
    """Inside the claimed step's transaction: the first step's transitions, then the step."""
    actor = _actor(task.agent)
    if task.state in (S.ASSIGNED, S.RETRYING):
        task_transition(task=task, to=S.ACKED, actor=actor, reason=f"attempt {task.attempt} picked up")
    if task.state == S.ACKED:
        task_transition(task=task, to=S.IN_PROGRESS, actor=actor)

    if approval is not None:
        _step_from_approval(task, approval, index)
        return _next(task, index)
    if isinstance(planned, PlannedStep):
        # The claim above moved the lease on; the statement re-checks it and keeps it.
        if not _step_commit(task, planned, attempt=task.attempt, new_attempt=task.attempt, index=index):
            raise RuntimeError(f"task {task.pk} lost its lease while its row was locked")
        return _next(task, index)
    if isinstance(planned, ApprovalNeeded):
        assert decision is not None
        errors = schema_errors(decision.arguments, planned.tool.args_schema)
        if errors:
            raise ToolError(f"invalid arguments for {planned.tool.name}: {errors}", fields=errors)
        return _approval_open(task, actor, index, planned.tool.name, planned.tool.level, decision,
                              planned.required_role, planned.reason)
    assert decision is not None
    if decision.kind == "finish":
        return _finish(task, blueprint, decision, actor)
    if decision.kind == "escalate":
        task.output = decision.output
        task.last_error = decision.reasoning[:2000]
        task.ack_deadline = None
        task_transition(task=task, to=S.ESCALATED, actor=actor, reason=decision.reasoning,
                        also=["output", "last_error", "ack_deadline"])
        return FINISHED
    raise ToolError(f"{blueprint.name} made a decision of unknown kind {decision.kind!r}")


def _step_from_approval(task: Task, approval: ApprovalRequest, index: int) -> None:
    actor = _actor(task.agent)
    if approval.status == ApprovalStatus.APPROVED:
        # F-HITL-7: recompute the binding just before executing; refuse on any mismatch.
        expected = action_hash(tool=approval.tool, arguments=approval.arguments, schema=connection.schema_name)
        if expected != approval.action_hash:
            raise ToolError(f"approved action {approval.pk} no longer matches its hash; refusing to run it")
        spec = TOOLS[approval.tool]
        result, reused = tool_run(task=task, step_index=index, tool=spec, arguments=approval.arguments,
                                  idempotency_key=f"approval:{approval.pk}")
        decision = "approved"
    else:
        result, reused, decision = {"rejected": True, "note": approval.decision_note}, False, "rejected"
    _step_record(task, index=index, action=approval.tool, arguments=approval.arguments, result=result,
                 decision=decision, reasoning=approval.reasoning)
    task.context = {k: v for k, v in task.context.items() if k != "decided_approval"}
    task.save(update_fields=["context"])
    _audit_step(task, actor, index, approval.tool, decision, {"approval_id": approval.pk, "reused_effect": reused})


def _approval_open(task: Task, actor: Actor, index: int, tool: str, level: int, decision: Decision,
                   required_role: str, reason: str) -> str:
    request = ApprovalRequest.objects.create(
        task=task, step_index=index, tool=tool, arguments=decision.arguments,
        action_hash=action_hash(tool=tool, arguments=decision.arguments, schema=connection.schema_name),
        privilege_level=level, reasoning=decision.reasoning, required_role=required_role)
    task.ack_deadline = None  # the claim moved the lease on: no message advances it until a decision
    task_transition(task=task, to=S.AWAITING_APPROVAL, actor=actor, reason=reason, also=["ack_deadline"])
    audit_record(actor=actor, verb="approval.requested", target_type="approval", target_id=request.pk,
                 data={"task_id": task.pk, "tool": tool, "action_hash": request.action_hash,
                       "required_role": required_role})
    publish("approval.requested", approval_id=request.pk, task_id=task.pk, tool=tool, required_role=required_role)
    return WAITING


def _finish(task: Task, blueprint: BaseAgent, decision: Decision, actor: Actor) -> str:
    output = decision.output or {}
    errors = schema_errors(output, blueprint.output_schema)
    if errors:
        raise ToolError(f"{blueprint.name} produced output that fails its schema: {errors}")
    task.output = output
    task.ack_deadline = None
    task_transition(task=task, to=S.COMPLETED, actor=actor, also=["output", "ack_deadline"])
    task_transition(task=task, to=S.VERIFIED, actor=actor, reason="output matches the blueprint's schema")
    return FINISHED


def _next(task: Task, index: int) -> str:
    # The claim already moved the lease on; send the message that holds it.
    dispatch(task_id=task.pk, attempt=task.attempt)
    publish("task.step", task_id=task.pk, index=index)
    return STEPPED


def _audit_step(task: Task, actor: Actor, index: int, action: str, decision: str, data: dict[str, Any]) -> None:
    audit_record(actor=actor, verb="agent.step", target_type="task", target_id=task.pk,
                 data={"index": index, "action": action, "decision": decision, **data},
                 correlation_id=task.correlation_id or None)


def backoff_seconds(retry: int) -> float:
    """Exponential backoff with full jitter: up to base · 2^(retry-1), capped."""
    ceiling = min(settings.TASK_RETRY_MAX_DELAY, settings.TASK_RETRY_BASE_DELAY * (2 ** max(0, retry - 1)))
    return random.uniform(ceiling / 2, ceiling)


def task_fail(*, task_id: int, attempt: int | None, error: str, actor: Actor | None = None) -> str:
    """Record a failed or timed-out attempt: retry with backoff, or escalate after
    TASK_MAX_RETRIES. A no-op when ``attempt`` no longer holds the lease."""
    with transaction.atomic():
        task = Task.objects.select_for_update().select_related("agent").filter(pk=task_id).first()
        if task is None or (attempt is not None and task.attempt != attempt) or task.state not in RUNNABLE:
            return STALE
        actor = actor or Actor.system("engine")
        task.retry_count += 1
        task.last_error = error[:2000]
        if task.retry_count > settings.TASK_MAX_RETRIES:
            task.ack_deadline = None
            task.attempt += 1
            task.save(update_fields=["retry_count", "last_error", "ack_deadline", "attempt", "updated_at"])
            task_transition(task=task, to=S.ESCALATED, actor=actor,
                            reason=f"gave up after {settings.TASK_MAX_RETRIES} retries: {error}"[:500])
            return FINISHED
        task.save(update_fields=["retry_count", "last_error", "updated_at"])
        if task.state != S.RETRYING:
            task_transition(task=task, to=S.RETRYING, actor=actor, reason=error[:500])
        lease_renew(task, countdown=backoff_seconds(task.retry_count))
        return RETRY
