"""Agents and tasks: the only code that changes them (the engine advances running tasks)."""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents import limits
from agents.blueprints import BLUEPRINTS, blueprint_class
from agents.events import publish
from agents.exceptions import (
    AgentNotFound,
    AgentUnavailable,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidAgentConfig,
    TaskBusy,
    TaskNotFound,
)
from agents.hooks import approvals
from agents.lease import dispatch, lease_deadline
from agents.models import (
    Agent,
    AgentConfigVersion,
    AgentStatus,
    AutomationLevel,
    PrivilegeLevel,
    Task,
    TaskPriority,
    Tool,
)
from agents.models import TaskState as S
from agents.schemas import schema_errors
from agents.states import task_transition
from agents.tools import TOOLS
from config.connection import connection as db_connection
from config.errors import NameTaken
from governance import access
from governance.actors import Actor
from governance.context import get_correlation_id
from governance.roles import user_agent_scope_set
from governance.services import audit_record
from tenants.connections import LLMConnectionUnavailable, llm_connection_usable

logger = logging.getLogger(__name__)

VERSIONED_FIELDS = ("config", "model_settings", "privilege_ceiling", "automation_level")
# {"provider": "offline"} or {"connection": <an operator's LLM connection>, "model": <one of its
# models>}. A tenant never names a URL, an environment variable or a timeout: those belong to
# the connection (tenants.connections), and any other key is refused by name.
MODEL_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "provider": {"type": "string", "enum": ["offline"]},
        "connection": {"type": "string", "minLength": 1, "maxLength": 50},
        "model": {"type": "string", "minLength": 1, "maxLength": 100},
    },
}


def _model_settings_errors(model_settings: dict[str, Any]) -> dict[str, str]:
    """Field errors of an agent's model settings: their shape, then whether the current tenant
    may use the connection they name and whether it offers the model."""
    refused = "not allowed: name a connection and one of its models; the operator sets its URL, key and timeout"
    known = MODEL_SETTINGS_SCHEMA["properties"]
    errors = {f"model_settings.{key}": refused for key in model_settings if key not in known}
    errors.update({f"model_settings.{k}": v for k, v in schema_errors(model_settings, MODEL_SETTINGS_SCHEMA).items()})
    if errors:
        return errors
    if "connection" not in model_settings:
        return {"model_settings.model": "needs a connection"} if "model" in model_settings else {}
    if "provider" in model_settings:
        return {"model_settings.provider": "give either a provider or a connection, not both"}
    name = model_settings["connection"]
    try:
        found = llm_connection_usable(name=name, schema_name=db_connection.schema_name)
    except LLMConnectionUnavailable as exc:
        return {"model_settings.connection": str(exc)}
    offered = ", ".join(found.allowed_models)
    if "model" not in model_settings:
        return {"model_settings.model": f"this field is required: one of {offered}"}
    if model_settings["model"] not in found.allowed_models:
        model = model_settings["model"]
        return {"model_settings.model": f"{model!r} is not offered by {name!r}; choose one of {offered}"}
    return {}


def tools_sync() -> int:
    """Make the Tool rows of the current schema mirror the code registry. Idempotent."""
    for spec in TOOLS.values():
        Tool.objects.update_or_create(
            name=spec.name,
            defaults={
                "description": spec.description,
                "privilege_level": spec.level,
                "args_schema": spec.args_schema,
                "has_side_effect": spec.has_side_effect,
            },
        )
    return len(TOOLS)


def _user_actor(user: User | AnonymousUser | None) -> Actor:
    return Actor.for_user(user) if user is not None else Actor.system("api")


def _validate_agent_fields(
    *, blueprint: str, config: Any, model_settings: Any, privilege_ceiling: Any, automation_level: Any
) -> None:
    errors: dict[str, str] = {}
    if blueprint not in BLUEPRINTS:
        raise InvalidAgentConfig(
            f"unknown blueprint {blueprint!r}; choose one of {', '.join(BLUEPRINTS)}",
            fields={"blueprint": "unknown blueprint"},
        )
    if not isinstance(config, dict):
        errors["config"] = "must be a JSON object"
    else:
        errors.update(
            {
                f"config.{k}" if k != "(root)" else "config": v
                for k, v in schema_errors(config, blueprint_class(blueprint).config_schema).items()
            }
        )
    if not isinstance(model_settings, dict):
        errors["model_settings"] = "must be a JSON object"
    else:
        errors.update(_model_settings_errors(model_settings))
    if privilege_ceiling not in PrivilegeLevel.values or isinstance(privilege_ceiling, bool):
        errors["privilege_ceiling"] = "must be an integer from 1 to 5"
    if automation_level not in AutomationLevel.values:
        errors["automation_level"] = f"must be one of {', '.join(AutomationLevel.values)}"
    if errors:
        raise InvalidAgentConfig("invalid agent configuration", fields=errors)


def _tools_for(names: list[str] | None, blueprint: str) -> list[Tool]:
    wanted = list(blueprint_class(blueprint).tools) if names is None else names
    if not isinstance(wanted, list) or not all(isinstance(n, str) for n in wanted):
        raise InvalidAgentConfig("tools must be a list of tool names", fields={"tools": "must be a list of names"})
    found = {t.name: t for t in Tool.objects.filter(name__in=wanted)}
    unknown = sorted(set(wanted) - set(found))
    if unknown:
        raise InvalidAgentConfig(
            f"unknown tools: {', '.join(unknown)}", fields={"tools": f"unknown: {', '.join(unknown)}"}
        )
    return [found[n] for n in wanted]


def _snapshot(agent: Agent) -> dict[str, Any]:
    return {f: getattr(agent, f) for f in VERSIONED_FIELDS}


def _version_record(agent: Agent, *, user: User | AnonymousUser | None, reason: str, before: dict[str, Any]) -> None:
    after = _snapshot(agent)
    diff = {k: {"from": before.get(k), "to": after[k]} for k in VERSIONED_FIELDS if before.get(k) != after[k]}
    AgentConfigVersion.objects.create(
        agent=agent,
        version=agent.version,
        author=user if isinstance(user, User) else None,
        author_label=_user_actor(user).label,
        reason=reason[:500],
        diff=diff,
        **after,
    )


@transaction.atomic(durable=True)
def agent_create(
    *,
    name: str,
    blueprint: str,
    config: dict[str, Any] | None = None,
    model_settings: dict[str, Any] | None = None,
    privilege_ceiling: int = PrivilegeLevel.EXECUTE_SAFE,
    automation_level: str = AutomationLevel.SEMI_AUTO,
    tools: list[str] | None = None,
    description: str = "",
    user: User | AnonymousUser | None = None,
) -> Agent:
    """Create an agent with validated config (version 1) and its tool grants (default: the
    blueprint's tools). Raises InvalidAgentConfig with field errors."""
    return agent_create_within(
        name=name,
        blueprint=blueprint,
        config=config,
        model_settings=model_settings,
        privilege_ceiling=privilege_ceiling,
        automation_level=automation_level,
        tools=tools,
        description=description,
        user=user,
    )


def agent_create_within(
    *,
    name: str,
    blueprint: str,
    config: dict[str, Any] | None = None,
    model_settings: dict[str, Any] | None = None,
    privilege_ceiling: int = PrivilegeLevel.EXECUTE_SAFE,
    automation_level: str = AutomationLevel.SEMI_AUTO,
    tools: list[str] | None = None,
    description: str = "",
    user: User | AnonymousUser | None = None,
) -> Agent:
    """``agent_create`` inside the caller's transaction, for code that makes the agent part of
    a change of its own: a tenant's demo content while it is provisioned, the admin's form
    (saved with its tool grants in one transaction)."""
    config = {} if config is None else config
    model_settings = {"provider": "offline"} if model_settings is None else model_settings
    _validate_agent_fields(
        blueprint=blueprint,
        config=config,
        model_settings=model_settings,
        privilege_ceiling=privilege_ceiling,
        automation_level=automation_level,
    )
    granted = _tools_for(tools, blueprint)
    if Agent.objects.filter(name=name).exists():
        raise NameTaken(f"an agent named {name!r} exists already")
    try:
        with transaction.atomic():
            agent = Agent.objects.create(
                name=name,
                blueprint=blueprint,
                config=config,
                model_settings=model_settings,
                privilege_ceiling=privilege_ceiling,
                automation_level=automation_level,
                description=description,
            )
    except IntegrityError:
        raise NameTaken(f"an agent named {name!r} exists already") from None
    agent.tools.set(granted)
    _version_record(agent, user=user, reason="created", before={})
    _creator_scope_extend(agent, user=user)
    audit_record(
        actor=_user_actor(user),
        verb="agent.created",
        target_type="agent",
        target_id=agent.pk,
        data={
            "name": name,
            "blueprint": blueprint,
            "tools": [t.name for t in granted],
            "privilege_ceiling": privilege_ceiling,
            "automation_level": automation_level,
        },
    )
    limits.agents_limit_check()  # under the audit lock just taken
    return agent


def _creator_scope_extend(agent: Agent, *, user: User | AnonymousUser | None) -> None:
    """A user limited to some agents manages (and so sees) the agents they create: without
    this, a scoped agent manager could create an agent and then not reach it."""
    if user is None or not user.is_authenticated:
        return
    managed = access.agent_grants(user)
    if managed:
        user_agent_scope_set(
            user=user,
            grant=access.MANAGE_AGENT,
            agent_ids=[*managed.get(access.MANAGE_AGENT, ()), agent.pk],
            actor=user,
        )


def agent_get(*, agent_id: int | None = None, name: str | None = None, lock: bool = False) -> Agent:
    # NO KEY: a change of an agent never touches its id, so inserts that refer to the agent
    # (a task being submitted, checked at its COMMIT) need not wait for it.
    query = Agent.objects.select_for_update(no_key=True) if lock else Agent.objects.all()
    try:
        return query.get(pk=agent_id) if agent_id is not None else query.get(name=name)
    except (Agent.DoesNotExist, ValueError, TypeError):
        raise AgentNotFound(f"no agent {agent_id if agent_id is not None else name!r}") from None


@transaction.atomic(durable=True)
def agent_update(*, agent_id: int, user: User | AnonymousUser | None, reason: str = "", **changes: Any) -> Agent:
    """Change an agent's versioned settings (config, model_settings, privilege_ceiling,
    automation_level) and/or description: each versioned change is a new version with its
    author, reason and diff. Workers read the new config at their next step."""
    return agent_update_within(agent_id=agent_id, user=user, reason=reason, **changes)


def agent_update_within(*, agent_id: int, user: User | AnonymousUser | None, reason: str = "", **changes: Any) -> Agent:
    """``agent_update`` inside the caller's transaction (the admin's form, a rollback)."""
    unknown = set(changes) - set(VERSIONED_FIELDS) - {"description"}
    if unknown:
        raise InvalidAgentConfig(
            f"cannot change {', '.join(sorted(unknown))}", fields={k: "not changeable" for k in unknown}
        )
    agent = agent_get(agent_id=agent_id, lock=True)
    before = _snapshot(agent)
    merged = {**before, **{k: v for k, v in changes.items() if k in VERSIONED_FIELDS}}
    _validate_agent_fields(blueprint=agent.blueprint, **merged)
    if "description" in changes:
        agent.description = str(changes["description"])[:5000]
    if merged == before:
        agent.save(update_fields=["description", "updated_at"])
        return agent
    for key, value in merged.items():
        setattr(agent, key, value)
    agent.version += 1
    agent.save()
    _version_record(agent, user=user, reason=reason or "updated", before=before)
    audit_record(
        actor=_user_actor(user),
        verb="agent.config_changed",
        target_type="agent",
        target_id=agent.pk,
        data={
            "version": agent.version,
            "reason": reason[:500],
            "changed": sorted(k for k in VERSIONED_FIELDS if before[k] != merged[k]),
        },
    )
    return agent


@transaction.atomic(durable=True)
def agent_rollback(*, agent_id: int, version: int, user: User | AnonymousUser | None, reason: str = "") -> Agent:
    """Restore the settings of an earlier version, as a new version."""
    agent = agent_get(agent_id=agent_id, lock=True)
    try:
        old = agent.versions.get(version=version)
    except AgentConfigVersion.DoesNotExist:
        raise InvalidAgentConfig(
            f"agent {agent.name} has no version {version}", fields={"version": "no such version"}
        ) from None
    return agent_update_within(
        agent_id=agent.pk,
        user=user,
        reason=reason or f"rollback to v{version}",
        **{f: getattr(old, f) for f in VERSIONED_FIELDS},
    )


@transaction.atomic(durable=True)
def agent_tools_set(*, agent_id: int, tools: list[str], user: User | AnonymousUser | None) -> Agent:
    """Replace the tools an agent may use (audited)."""
    return agent_tools_set_within(agent_id=agent_id, tools=tools, user=user)


def agent_tools_set_within(*, agent_id: int, tools: list[str], user: User | AnonymousUser | None) -> Agent:
    """``agent_tools_set`` inside the caller's transaction (the admin's form)."""
    agent = agent_get(agent_id=agent_id, lock=True)
    granted = _tools_for(tools, agent.blueprint)
    before = sorted(agent.tools.values_list("name", flat=True))
    agent.tools.set(granted)
    audit_record(
        actor=_user_actor(user),
        verb="agent.tools_changed",
        target_type="agent",
        target_id=agent.pk,
        data={"from": before, "to": sorted(t.name for t in granted)},
    )
    return agent


@transaction.atomic(durable=True)
def agent_status_set(*, agent_id: int, status: str, user: User | AnonymousUser | None) -> Agent:
    """Pause (running tasks stop at their next step boundary) or enable an agent; enabling
    re-sends the agent's held tasks."""
    if status not in AgentStatus.values:
        raise InvalidAgentConfig(f"unknown status {status!r}", fields={"status": "enabled or paused"})
    agent = agent_get(agent_id=agent_id, lock=True)
    if agent.status == status:
        return agent
    agent.status = status
    agent.save(update_fields=["status", "updated_at"])
    audit_record(actor=_user_actor(user), verb=f"agent.{status}", target_type="agent", target_id=agent.pk, data={})
    if status == AgentStatus.ENABLED:
        limits.agents_limit_check()  # a paused agent does not count against max_agents
    publish("agent.paused" if status == AgentStatus.PAUSED else "agent.resumed", agent_id=agent.pk, agent=agent.name)
    if status == AgentStatus.ENABLED:
        # Its held and queued tasks may go again, as far as the tenant has slots free (under
        # the audit lock just taken; agents.limits).
        limits.tasks_admit(lock=False)
    return agent


@transaction.atomic(durable=True)
def task_submit(
    *,
    agent_name: str | None = None,
    agent_id: int | None = None,
    input: Any,
    priority: int = TaskPriority.MEDIUM,
    user: User | AnonymousUser | None = None,
    idempotency_key: str | None = None,
) -> Task:
    """Queue a task for an agent and send its first message after commit. Raises
    AgentNotFound, AgentUnavailable (paused) or InvalidAgentConfig with the input's field
    errors.

    With ``idempotency_key`` (1-200 printable ASCII characters), a submit that repeats one of
    the last IDEMPOTENCY_KEY_TTL in this tenant returns the task the first one created, in
    whatever state it is now, and creates nothing; the same key with another agent, input or
    priority raises IdempotencyKeyReused (422). A key older than that is forgotten."""
    return task_submit_within(
        agent_name=agent_name,
        agent_id=agent_id,
        input=input,
        priority=priority,
        user=user,
        idempotency_key=idempotency_key,
    )


def task_submit_within(
    *,
    agent_name: str | None = None,
    agent_id: int | None = None,
    input: Any,
    priority: int = TaskPriority.MEDIUM,
    user: User | AnonymousUser | None = None,
    idempotency_key: str | None = None,
    actor: Actor | None = None,
) -> Task:
    """``task_submit`` inside the caller's transaction, for code that records the task with a
    change of its own (an ingested event and its task commit together). ``actor``: who asks
    when no user does (a system actor: an event source)."""
    agent = agent_get(agent_id=agent_id, name=agent_name)
    if idempotency_key is not None:
        earlier = _task_for_idempotency_key(idempotency_key)
        if earlier is not None:
            return _task_replayed(earlier, agent=agent, input=input, priority=priority)
    if agent.status != AgentStatus.ENABLED:
        raise AgentUnavailable(f"agent {agent.name} is paused", agent=agent.name)
    if priority not in TaskPriority.values or isinstance(priority, bool):
        raise InvalidAgentConfig("invalid priority", fields={"priority": "must be 1 (low) to 4 (critical)"})
    errors = schema_errors(input, blueprint_class(agent.blueprint).input_schema)
    if errors:
        raise InvalidAgentConfig(
            "invalid task input", fields={f"input.{k}" if k != "(root)" else "input": v for k, v in errors.items()}
        )
    try:
        # With a key, a savepoint: a concurrent submit with the same key may commit its task first.
        with transaction.atomic() if idempotency_key else contextlib.nullcontext():
            task = Task.objects.create(
                agent=agent,
                input=input,
                priority=priority,
                agent_version=agent.version,
                correlation_id=get_correlation_id(),
                idempotency_key=idempotency_key,
                created_by=user if isinstance(user, User) else None,
            )
    except IntegrityError:
        winner = Task.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        if winner is None:
            raise
        return _task_replayed(winner, agent=agent, input=input, priority=priority)
    actor = actor or _user_actor(user)
    audit_record(
        actor=actor,
        verb="task.submitted",
        target_type="task",
        target_id=task.pk,
        data={"agent": agent.name, "priority": priority},
        correlation_id=task.correlation_id,
    )
    # Under the audit lock just taken: count the run against the tier's limits, then send the
    # task, or leave it queued while the tenant has its share of tasks in flight (agents.limits).
    tenant = limits.run_count(model=limits.model_key(agent.model_settings))
    limits.task_admit_or_wait(task, tenant=tenant, actor=actor)
    return task


IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,200}")


def _task_for_idempotency_key(key: str) -> Task | None:
    """The task an earlier submit created with ``key``, if that was within the TTL. An
    expired key is released (cleared on its task) so that this submit can take it."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidAgentConfig(
            "invalid Idempotency-Key", fields={"idempotency_key": "must be 1 to 200 printable ASCII characters"}
        )
    earlier = Task.objects.filter(idempotency_key=key).first()
    if earlier is not None and earlier.created_at < timezone.now() - IDEMPOTENCY_KEY_TTL:
        Task.objects.filter(pk=earlier.pk, idempotency_key=key).update(idempotency_key=None)
        return None
    return earlier


def _task_replayed(earlier: Task, *, agent: Agent, input: Any, priority: int) -> Task:
    if (earlier.agent_id, earlier.input, earlier.priority) != (agent.pk, input, priority):
        raise IdempotencyKeyReused(
            f"Idempotency-Key {earlier.idempotency_key!r} was used for task {earlier.pk} with another agent, "
            "input or priority; use a new key for a new request",
            task=earlier.pk,
        )
    return earlier


def task_get(*, task_id: int, lock: bool = False) -> Task:
    query = Task.objects.select_for_update(no_key=True) if lock else Task.objects.all()
    try:
        return query.get(pk=task_id)
    except (Task.DoesNotExist, ValueError, TypeError):
        raise TaskNotFound(f"no task {task_id}") from None


def _approvals_close(task_id: int) -> None:
    # Nobody can decide them any more (hitl owns the requests; see agents.hooks).
    approvals().close(task_id=task_id)


class _GateOpened(Exception):
    pass


# How many times a cancel or escalate takes the task's requests and the task again when a step
# opened a new request between the two.
GATE_RETRIES = 5


def _task_lock_after_approvals(task_id: int) -> Task:
    """Close a task's open approval requests, then lock the task: the order in which deciding
    a request takes them (hitl.services.approval_decide locks its request, gives its
    assignee's slot back, then resumes the task), for a change that ends the task's wait for a
    decision (cancel, escalate). The other order could hold the task while waiting for a
    request whose decision waits for the task.

    A step that held the task may stop at a gate and open a request between the two: then the
    task is awaiting approval under another attempt than before. The savepoint is rolled back
    (which releases what it locked) and both are taken again. Should that happen at every try,
    the change is refused (TaskBusy, 409: try again) rather than closing the newest request
    after the task, the order that could deadlock with its decision. Should the change be
    refused otherwise (a task in a final state), its transaction rolls back the closing too."""
    for _ in range(GATE_RETRIES):
        seen = task_get(task_id=task_id).attempt
        try:
            with transaction.atomic():
                _approvals_close(task_id)
                task = task_get(task_id=task_id, lock=True)
                if task.state == S.AWAITING_APPROVAL and task.attempt != seen:
                    raise _GateOpened
                return task
        except _GateOpened:
            continue
    raise TaskBusy(f"task {task_id} kept stopping at new approval gates; try again", task=task_id)


@transaction.atomic(durable=True)
def task_cancel(*, task_id: int, user: User | AnonymousUser | None, reason: str = "") -> Task:
    """Cancel a task in any non-final state; in-flight messages become stale and pending
    approvals are closed. Raises IllegalTransition (409) from a final state."""
    task = _task_lock_after_approvals(task_id)
    task.attempt += 1
    task.ack_deadline = None
    task.save(update_fields=["attempt", "ack_deadline", "updated_at"])
    task_transition(task=task, to=S.CANCELLED, actor=_user_actor(user), reason=reason or "cancelled")
    limits.tasks_admit(lock=False)  # its slot, if it had one, is free
    return task


@transaction.atomic(durable=True)
def task_escalate(*, task_id: int, user: User | AnonymousUser | None, reason: str) -> Task:
    """Hand a task to humans now (F-HITL-5)."""
    task = _task_lock_after_approvals(task_id)
    task.attempt += 1
    task.ack_deadline = None
    task.last_error = (reason or "escalated manually")[:2000]
    task.save(update_fields=["attempt", "ack_deadline", "last_error", "updated_at"])
    task_transition(task=task, to=S.ESCALATED, actor=_user_actor(user), reason=reason or "escalated manually")
    limits.tasks_admit(lock=False)
    return task


@transaction.atomic(durable=True)
def task_override(*, task_id: int, user: User | AnonymousUser | None, output: Any, reason: str = "") -> Task:
    """A reviewer completes an escalated task with the output they decide."""
    if not isinstance(output, dict):
        raise InvalidAgentConfig("output must be a JSON object", fields={"output": "must be a JSON object"})
    task = task_get(task_id=task_id, lock=True)
    task.output = output
    task.save(update_fields=["output", "updated_at"])
    task_transition(task=task, to=S.COMPLETED, actor=_user_actor(user), reason=reason or "overridden by a reviewer")
    return task


@transaction.atomic(durable=True)
def task_retry(*, task_id: int, user: User | AnonymousUser | None) -> Task:
    """Send an escalated task back to the workers with a fresh retry budget: queued again, and
    sent like a new task, now if its tenant has a slot free and nothing waits before it, else
    in its turn (agents.limits)."""
    task = task_get(task_id=task_id, lock=True)
    actor = _user_actor(user)
    task.retry_count = 0
    task_transition(task=task, to=S.QUEUED, actor=actor, reason="retried by a human", also=["retry_count"])
    limits.task_admit_or_wait(task, actor=actor)  # under the audit lock the transition took
    return task


@transaction.atomic
def task_resume(*, task_id: int, step_index: int, user: User | AnonymousUser | None, reason: str) -> Task:
    """Send a task that waits for a decision at step ``step_index`` back to the workers, inside
    the caller's transaction (hitl.services.approval_decide, which records the decision, and
    has locked the request before the task). One statement moves
    it to in_progress with a new attempt and writes the transition and its audit event. It goes
    in flight like any task (agents.limits): now, with a lease and its message sent after
    commit, if its tenant has a slot free and nothing waits before it; else it waits held at
    its step boundary (no lease) and goes in its turn, when a slot frees. However many decisions
    land at once, the tenant keeps to max_concurrent_tasks. The engine then finds the decided
    request by task and step (agents.hooks).

    Raises TaskNotFound, or IllegalTransition (409) when the task no longer waits at that step."""
    task = task_get(task_id=task_id, lock=True)
    if task.state != S.AWAITING_APPROVAL or task.steps.filter(index__gte=step_index).exists():
        raise IllegalTransition(
            f"task {task.pk} is {task.state} and no longer waits at step {step_index}",
            task=task.pk,
            state=task.state,
            to=S.IN_PROGRESS,
        )
    # Whether it goes now is decided under the tenant's audit lock (agents.limits), taken here,
    # after the task's row lock, as the transition below would take it.
    limits.audit_lock()
    go = limits.may_go_now(task)
    task.attempt += 1
    task.ack_deadline = lease_deadline() if go else None
    task_transition(
        task=task, to=S.IN_PROGRESS, actor=_user_actor(user), reason=reason, also=["attempt", "ack_deadline"]
    )
    if go:
        dispatch(task_id=task.pk, attempt=task.attempt)
    else:
        limits.task_admit_in_turn(task)
    return task


@transaction.atomic
def tasks_resend_held() -> int:
    """Re-send the held tasks (runnable, no deadline: stopped at a step boundary while their
    tenant was suspended or their agent paused, or resumed after a decision while the tenant
    had no slot free) of the enabled agents of the current schema, then its queued tasks, as
    far as the tenant has slots free (agents.limits.tasks_admit). In-flight tasks always have
    a deadline and are left alone."""
    return limits.tasks_admit()
