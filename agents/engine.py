"""Advance one task by one step: the orchestration. Called by the Celery task
``agents.advance_task`` with the tenant's schema already active.

A message reads the task (``selectors.task_snapshot``), checks that it still holds the lease
(``agents.lease``), plans the step (the blueprint, which may call an LLM, or the decided
approval the task resumes at), authorizes and runs the tool, which only describes its effect:
all before any lock. A step of a task in progress is then one statement
(``statements.STEP``), its own transaction: it takes the row lock, re-checks the lease and
records the step with its effect, outbox message and audit event, or writes nothing. The
first message of a task, the last one, approval gates and escalations run in a short
transaction that claims the lease first. The next message is sent after commit.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents import limits
from agents.authorization import DENY, authorize
from agents.blueprints import BaseAgent, Decision, StepContext, blueprint_class
from agents.effects import PlannedEffect, effect_plan
from agents.events import publish
from agents.exceptions import ToolError
from agents.hooks import DecidedApproval, Gate, approval_gate, approvals
from agents.integrations.relay import relay_kick
from agents.lease import dispatch, lease_claim, lease_deadline, lease_hold, task_fail
from agents.llm import provider_for
from agents.models import Agent, AgentStatus, Task
from agents.models import TaskState as S
from agents.outcomes import Outcome
from agents.schemas import schema_errors
from agents.selectors import Snapshot, task_snapshot
from agents.statements import STEP, STEP_WITH_EFFECT, step_params
from agents.states import RUNNABLE, task_transition
from agents.tools import TOOLS, ToolSpec
from config.connection import connection
from config.db import prepared_cursor
from governance.actors import Actor
from governance.context import set_correlation_id
from governance.services import audit_append_params

logger = logging.getLogger(__name__)


def _actor(agent: Agent) -> Actor:
    return Actor(type="agent", id=str(agent.pk), label=agent.name)


@dataclass(frozen=True)
class PlannedStep:
    """A step decided and, for a tool, run (its effect only described): what the step
    statement writes."""

    action: str
    decision: str  # record | allow | denied | approved | rejected
    result: Any
    arguments: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Any = 0
    latency_ms: float = 0
    effect: PlannedEffect | None = None
    audit: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalNeeded:
    tool: ToolSpec
    required_role: str
    reason: str
    gate: Gate | None = None


def _plan_step(
    snapshot: Snapshot, blueprint: BaseAgent, ctx: StepContext, decision: Decision, index: int
) -> PlannedStep | ApprovalNeeded | None:
    """What a "record" or "tool" decision writes, or that its tool needs an approval first.
    None for the other decisions (finish, escalate)."""
    if decision.kind == "record":
        llm, result = decision.llm, blueprint.execute_step(decision, ctx)
        if llm is None:
            return PlannedStep(action=decision.action, decision="record", result=result, reasoning=decision.reasoning)
        return PlannedStep(
            action=decision.action,
            decision="record",
            result=result,
            reasoning=decision.reasoning,
            tokens=llm.tokens,
            tokens_in=llm.prompt_tokens,
            tokens_out=llm.completion_tokens,
            cost_usd=llm.cost_usd,
            latency_ms=llm.latency_ms,
            audit={"model": llm.model, "tokens": llm.tokens, "cost_usd": str(llm.cost_usd)},
        )
    if decision.kind != "tool":
        return None
    spec = TOOLS.get(decision.action)
    if spec is None:
        raise ToolError(f"unknown tool {decision.action!r}")
    verdict = authorize(agent=snapshot.agent, tool=spec, granted=set(snapshot.granted))
    if verdict.outcome == DENY:
        return PlannedStep(
            action=spec.name,
            decision="denied",
            result={"denied": verdict.reason},
            arguments=decision.arguments,
            reasoning=decision.reasoning,
            audit={"reason": verdict.reason},
        )
    # Approval policies (hitl) may gate a call the built-in rules allow, or waive the gate.
    gate = approval_gate(
        agent=snapshot.agent, tool=spec, arguments=decision.arguments, verdict=verdict, rules=snapshot.gate_rules
    )
    if gate.needs_approval:
        return ApprovalNeeded(tool=spec, required_role=gate.required_role, reason=gate.reason, gate=gate)
    result, effect = effect_plan(
        tool=spec, arguments=decision.arguments, idempotency_key=f"task:{snapshot.task.pk}:step:{index}"
    )
    # The key is new: the step statement writes it with the step, and a message that finds
    # the step written finds the lease moved on too.
    return PlannedStep(
        action=spec.name,
        decision="allow",
        result=result,
        arguments=decision.arguments,
        reasoning=decision.reasoning,
        effect=effect,
        audit={"reused_effect": False, **gate.audit},
    )


def _decided_step(decided: DecidedApproval) -> PlannedStep:
    """The step a human decided: the approved action (its effect under the request's own
    key) or the rejection, written like any other step."""
    audit = {"approval_id": decided.id}
    if not decided.approved:
        return PlannedStep(
            action=decided.tool,
            decision="rejected",
            result={"rejected": True, "note": decided.note},
            arguments=decided.arguments,
            reasoning=decided.reasoning,
            audit=audit,
        )
    # F-HITL-7: the binding was recomputed just now; refuse on any mismatch.
    if not decided.intact:
        raise ToolError(f"approved action {decided.id} no longer matches its hash; refusing to run it")
    spec = TOOLS.get(decided.tool)
    if spec is None:
        raise ToolError(f"approved action {decided.id} names an unknown tool {decided.tool!r}")
    result, effect = effect_plan(tool=spec, arguments=decided.arguments, idempotency_key=f"approval:{decided.id}")
    return PlannedStep(
        action=spec.name,
        decision="approved",
        result=result,
        arguments=decided.arguments,
        reasoning=decided.reasoning,
        effect=effect,
        audit={**audit, "reused_effect": False},
    )


def _step_commit(task: Task, step: PlannedStep, *, attempt: int, new_attempt: int, index: int) -> bool:
    """The one writer of steps: write ``step`` with its effect and audit event
    (statements.STEP or STEP_WITH_EFFECT) if ``attempt`` holds the task's lease, moving the
    lease to ``new_attempt``. False, with nothing written, when it no longer does."""
    audit = audit_append_params(
        actor=_actor(task.agent),
        verb="agent.step",
        target_type="task",
        target_id=task.pk,
        data={"index": index, "action": step.action, "decision": step.decision, **step.audit},
        correlation_id=task.correlation_id or None,
    )
    now = timezone.now()
    deadline = lease_deadline(now=now)
    params = step_params(
        task_id=task.pk,
        attempt=attempt,
        new_attempt=new_attempt,
        deadline=deadline,
        now=now,
        index=index,
        action=step.action,
        arguments=json.dumps(step.arguments),
        result=json.dumps(step.result),
        decision=step.decision,
        reasoning=step.reasoning,
        tokens=step.tokens,
        cost_usd=step.cost_usd,
        latency_ms=step.latency_ms,
        audit=audit,
        effect=step.effect.params() if step.effect else None,
        usage_model=limits.model_key(task.agent.model_settings),
        tokens_in=step.tokens_in,
        tokens_out=step.tokens_out,
    )
    with prepared_cursor() as cursor:
        cursor.execute((STEP_WITH_EFFECT if step.effect else STEP).sql, params)
        written = cursor.fetchone() is not None
    if written:
        task.attempt, task.ack_deadline = new_attempt, deadline
        if step.effect is not None and step.effect.outbox_kind is not None:
            relay_kick(task_id=task.pk)  # after commit: no statement of the step's
    return written


def advance(*, task_id: int, attempt: int) -> Outcome:
    """Run the next step of a task if ``attempt`` still holds its lease; what happened."""
    snapshot = task_snapshot(task_id=task_id)
    if snapshot is None:
        return Outcome.MISSING
    task, agent = snapshot.task, snapshot.agent
    if task.attempt != attempt or task.state not in RUNNABLE:
        logger.info("step.stale", extra={"task_id": task_id, "attempt": attempt, "current": task.attempt})
        return Outcome.STALE
    set_correlation_id(task.correlation_id or None)
    if snapshot.tenant_status != "active" or agent.status != AgentStatus.ENABLED:
        lease_hold(task_id=task_id, attempt=attempt)
        return Outcome.HELD
    index = snapshot.count
    try:
        blueprint = blueprint_class(agent.blueprint)(config=agent.config, provider=provider_for(agent.model_settings))
        # Only a task that waited for a decision can resume at a decided one (hitl owns them).
        decided = approvals().decided(task_id=task_id, step_index=index) if snapshot.gated else None
        decision: Decision | None = None
        planned: PlannedStep | ApprovalNeeded | None
        # Its first step, and each retry of it: a task that has not started does not start
        # past the month's tokens (agents.limits).
        starting = index == 0 and task.state in (S.ASSIGNED, S.RETRYING)
        refused = limits.tokens_exceeded_at_start() if starting else None
        if refused is not None:
            decision, planned = Decision.escalate(str(refused)), None
        elif decided is not None:
            planned = _decided_step(decided)
        else:
            ctx = StepContext(
                agent=agent.name,
                task_input=task.input,
                config=blueprint.config,
                latest=snapshot.latest,
                count=snapshot.count,
            )
            decision = (
                blueprint.plan(ctx)
                if blueprint.should_continue(ctx)
                else Decision.escalate(f"stopped after {snapshot.count} steps (max_iterations)")
            )
            planned = _plan_step(snapshot, blueprint, ctx, decision, index)
        if isinstance(planned, PlannedStep) and task.state == S.IN_PROGRESS:
            # The common step: one statement, which is its own transaction (inside a caller's
            # transaction, a savepoint keeps that transaction usable should the statement fail).
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                written = _step_commit(task, planned, attempt=attempt, new_attempt=attempt + 1, index=index)
            return _next(task, index) if written else Outcome.STALE
        with transaction.atomic():
            if not lease_claim(task, attempt):
                return Outcome.STALE
            outcome = _apply(task, blueprint, decision, planned, index)
            if outcome in (Outcome.FINISHED, Outcome.WAITING):
                # It left flight, under the audit lock its transitions took: a queued task of
                # the tenant may go (agents.limits).
                limits.tasks_admit(lock=False)
            return outcome
    except Exception as exc:  # any failure of a step is retried with backoff, then escalated
        logger.warning(
            "step.failed",
            extra={"task_id": task_id, "attempt": attempt, "error": str(exc)[:200]},
            exc_info=not isinstance(exc, ToolError),
        )
        task_fail(task_id=task_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        return Outcome.RETRY


def _apply(
    task: Task,
    blueprint: BaseAgent,
    decision: Decision | None,
    planned: PlannedStep | ApprovalNeeded | None,
    index: int,
) -> Outcome:
    """Inside the claimed step's transaction: the first step's transitions, then the step."""
    actor = _actor(task.agent)
    if task.state in (S.ASSIGNED, S.RETRYING):
        task_transition(task=task, to=S.ACKED, actor=actor, reason=f"attempt {task.attempt} picked up")
    if task.state == S.ACKED:
        task_transition(task=task, to=S.IN_PROGRESS, actor=actor)

    if isinstance(planned, PlannedStep):
        # The claim above moved the lease on; the statement re-checks it and keeps it.
        if not _step_commit(task, planned, attempt=task.attempt, new_attempt=task.attempt, index=index):
            raise RuntimeError(f"task {task.pk} lost its lease while its row was locked")
        return _next(task, index)
    if decision is None:  # a decided approval always plans a step
        raise ToolError(f"task {task.pk} has nothing to do at step {index}")
    if isinstance(planned, ApprovalNeeded):
        return _approval_ask(task, actor, index, planned, decision)
    if decision.kind == "finish":
        return _finish(task, blueprint, decision, actor)
    if decision.kind == "escalate":
        return _escalate(task, actor, decision.reasoning, decision.output)
    raise ToolError(f"{blueprint.name} made a decision of unknown kind {decision.kind!r}")


def _approval_ask(task: Task, actor: Actor, index: int, needed: ApprovalNeeded, decision: Decision) -> Outcome:
    """Stop at the gate: the task waits (no deadline: no message advances it until a decision)
    and hitl opens the request, in this transaction."""
    errors = schema_errors(decision.arguments, needed.tool.args_schema)
    if errors:
        raise ToolError(f"invalid arguments for {needed.tool.name}: {errors}", fields=errors)
    refused = limits.pending_approvals_exceeded()
    if refused is not None:
        # A request nobody could reach in time is worse than none: humans take the task.
        return _escalate(task, actor, f"{needed.tool.name} needs an approval, but {refused}", decision.output)
    task.ack_deadline = None
    task_transition(task=task, to=S.AWAITING_APPROVAL, actor=actor, reason=needed.reason, also=["ack_deadline"])
    approvals().open(
        task=task,
        step_index=index,
        tool=needed.tool.name,
        level=needed.tool.level,
        arguments=decision.arguments,
        reasoning=decision.reasoning,
        required_role=needed.required_role,
        actor=actor,
        gate=needed.gate,
    )
    limits.approval_count(model=limits.model_key(task.agent.model_settings))
    return Outcome.WAITING


def _escalate(task: Task, actor: Actor, reason: str, output: Any) -> Outcome:
    task.output = output
    task.last_error = reason[:2000]
    task.ack_deadline = None
    task_transition(
        task=task,
        to=S.ESCALATED,
        actor=actor,
        reason=reason,
        also=["output", "last_error", "ack_deadline"],
    )
    return Outcome.FINISHED


def _finish(task: Task, blueprint: BaseAgent, decision: Decision, actor: Actor) -> Outcome:
    output = decision.output or {}
    errors = schema_errors(output, blueprint.output_schema)
    if errors:
        raise ToolError(f"{blueprint.name} produced output that fails its schema: {errors}")
    task.output = output
    task.ack_deadline = None
    task_transition(task=task, to=S.COMPLETED, actor=actor, also=["output", "ack_deadline"])
    task_transition(task=task, to=S.VERIFIED, actor=actor, reason="output matches the blueprint's schema")
    return Outcome.FINISHED


def _next(task: Task, index: int) -> Outcome:
    # The step moved the lease on; send the message that holds it.
    dispatch(task_id=task.pk, attempt=task.attempt)
    publish("task.step", task_id=task.pk, index=index)
    return Outcome.STEPPED
