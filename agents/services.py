"""Agents and tasks: the only code that changes them (the engine advances running tasks)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.blueprints import BLUEPRINTS, blueprint_class
from agents.engine import dispatch, lease_renew
from agents.exceptions import AgentNotFound, AgentUnavailable, InvalidAgentConfig, TaskNotFound
from agents.models import (Agent, AgentConfigVersion, AgentStatus, AutomationLevel, PrivilegeLevel, Task,
                           TaskPriority, TaskState as S, Tool)
from agents.schemas import schema_errors
from agents.states import task_transition
from agents.tools import TOOLS
from governance.actors import Actor
from governance.context import get_correlation_id
from governance.services import audit_record
from hitl.models import ApprovalRequest, ApprovalStatus

logger = logging.getLogger(__name__)

VERSIONED_FIELDS = ("config", "model_settings", "privilege_ceiling", "automation_level")
MODEL_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {"provider": {"type": "string", "enum": ["offline", "openai"]},
                   "model": {"type": "string", "minLength": 1, "maxLength": 100},
                   "base_url": {"type": "string", "maxLength": 500},
                   "api_key_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                   "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600}},
}


def tools_sync() -> int:
    """Make the Tool rows of the current schema mirror the code registry. Idempotent."""
    for spec in TOOLS.values():
        Tool.objects.update_or_create(name=spec.name, defaults={
            "description": spec.description, "privilege_level": spec.level, "args_schema": spec.args_schema,
            "has_side_effect": spec.has_side_effect})
    return len(TOOLS)


def _user_actor(user: AbstractBaseUser | None) -> Actor:
    return Actor.for_user(user) if user is not None else Actor.system("api")


def _validate_agent_fields(*, blueprint: str, config: Any, model_settings: Any, privilege_ceiling: Any,
                           automation_level: Any) -> None:
    errors: dict[str, str] = {}
    if blueprint not in BLUEPRINTS:
        raise InvalidAgentConfig(f"unknown blueprint {blueprint!r}; choose one of {', '.join(BLUEPRINTS)}",
                                 fields={"blueprint": "unknown blueprint"})
    if not isinstance(config, dict):
        errors["config"] = "must be a JSON object"
    else:
        errors.update({f"config.{k}" if k != "(root)" else "config": v
                       for k, v in schema_errors(config, blueprint_class(blueprint).config_schema).items()})
    if not isinstance(model_settings, dict):
        errors["model_settings"] = "must be a JSON object"
    else:
        errors.update({f"model_settings.{k}": v for k, v in schema_errors(model_settings, MODEL_SETTINGS_SCHEMA).items()})
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
        raise InvalidAgentConfig(f"unknown tools: {', '.join(unknown)}", fields={"tools": f"unknown: {', '.join(unknown)}"})
    return [found[n] for n in wanted]


def _snapshot(agent: Agent) -> dict[str, Any]:
    return {f: getattr(agent, f) for f in VERSIONED_FIELDS}


def _version_record(agent: Agent, *, user: AbstractBaseUser | None, reason: str, before: dict[str, Any]) -> None:
    after = _snapshot(agent)
    diff = {k: {"from": before.get(k), "to": after[k]} for k in VERSIONED_FIELDS if before.get(k) != after[k]}
    AgentConfigVersion.objects.create(
        agent=agent, version=agent.version, author=user if user is not None and user.is_authenticated else None,
        author_label=_user_actor(user).label, reason=reason[:500], diff=diff, **after)


@transaction.atomic
def agent_create(*, name: str, blueprint: str, config: dict[str, Any] | None = None,
                 model_settings: dict[str, Any] | None = None, privilege_ceiling: int = PrivilegeLevel.EXECUTE_SAFE,
                 automation_level: str = AutomationLevel.SEMI_AUTO, tools: list[str] | None = None,
                 description: str = "", user: AbstractBaseUser | None = None) -> Agent:
    """Create an agent with validated config (version 1) and its tool grants (default: the
    blueprint's tools). Raises InvalidAgentConfig with field errors."""
    config = {} if config is None else config
    model_settings = {"provider": "offline"} if model_settings is None else model_settings
    _validate_agent_fields(blueprint=blueprint, config=config, model_settings=model_settings,
                           privilege_ceiling=privilege_ceiling, automation_level=automation_level)
    granted = _tools_for(tools, blueprint)
    if Agent.objects.filter(name=name).exists():
        raise InvalidAgentConfig(f"an agent named {name!r} exists already", fields={"name": "already in use"})
    try:
        with transaction.atomic():
            agent = Agent.objects.create(name=name, blueprint=blueprint, config=config, model_settings=model_settings,
                                         privilege_ceiling=privilege_ceiling, automation_level=automation_level,
                                         description=description)
    except IntegrityError:
        raise InvalidAgentConfig(f"an agent named {name!r} exists already", fields={"name": "already in use"}) from None
    agent.tools.set(granted)
    _version_record(agent, user=user, reason="created", before={})
    audit_record(actor=_user_actor(user), verb="agent.created", target_type="agent", target_id=agent.pk,
                 data={"name": name, "blueprint": blueprint, "tools": [t.name for t in granted],
                       "privilege_ceiling": privilege_ceiling, "automation_level": automation_level})
    return agent


def agent_get(*, agent_id: int | None = None, name: str | None = None, lock: bool = False) -> Agent:
    query = Agent.objects.select_for_update() if lock else Agent.objects.all()
    try:
        return query.get(pk=agent_id) if agent_id is not None else query.get(name=name)
    except (Agent.DoesNotExist, ValueError, TypeError):
        raise AgentNotFound(f"no agent {agent_id if agent_id is not None else name!r}") from None


@transaction.atomic
def agent_update(*, agent_id: int, user: AbstractBaseUser | None, reason: str = "",
                 **changes: Any) -> Agent:
    """Change an agent's versioned settings (config, model_settings, privilege_ceiling,
    automation_level) and/or description: each versioned change is a new version with its
    author, reason and diff. Workers read the new config at their next step."""
    unknown = set(changes) - set(VERSIONED_FIELDS) - {"description"}
    if unknown:
        raise InvalidAgentConfig(f"cannot change {', '.join(sorted(unknown))}",
                                 fields={k: "not changeable" for k in unknown})
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
    audit_record(actor=_user_actor(user), verb="agent.config_changed", target_type="agent", target_id=agent.pk,
                 data={"version": agent.version, "reason": reason[:500],
                       "changed": sorted(k for k in VERSIONED_FIELDS if before[k] != merged[k])})
    return agent


@transaction.atomic
def agent_rollback(*, agent_id: int, version: int, user: AbstractBaseUser | None, reason: str = "") -> Agent:
    """Restore the settings of an earlier version, as a new version."""
    agent = agent_get(agent_id=agent_id, lock=True)
    try:
        old = agent.versions.get(version=version)
    except AgentConfigVersion.DoesNotExist:
        raise InvalidAgentConfig(f"agent {agent.name} has no version {version}",
                                 fields={"version": "no such version"}) from None
    return agent_update(agent_id=agent.pk, user=user, reason=reason or f"rollback to v{version}",
                        **{f: getattr(old, f) for f in VERSIONED_FIELDS})


@transaction.atomic
def agent_tools_set(*, agent_id: int, tools: list[str], user: AbstractBaseUser | None) -> Agent:
    """Replace the tools an agent may use (audited)."""
    agent = agent_get(agent_id=agent_id, lock=True)
    granted = _tools_for(tools, agent.blueprint)
    before = sorted(agent.tools.values_list("name", flat=True))
    agent.tools.set(granted)
    audit_record(actor=_user_actor(user), verb="agent.tools_changed", target_type="agent", target_id=agent.pk,
                 data={"from": before, "to": sorted(t.name for t in granted)})
    return agent


@transaction.atomic
def agent_status_set(*, agent_id: int, status: str, user: AbstractBaseUser | None) -> Agent:
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
        for task in Task.objects.select_for_update().filter(agent=agent, ack_deadline__isnull=True, state__in=[
                S.ASSIGNED, S.ACKED, S.IN_PROGRESS, S.RETRYING]):
            lease_renew(task)
    return agent


@transaction.atomic
def task_submit(*, agent_name: str | None = None, agent_id: int | None = None, input: Any,
                priority: int = TaskPriority.MEDIUM, user: AbstractBaseUser | None = None) -> Task:
    """Queue a task for an agent and send its first message after commit. Raises
    AgentNotFound, AgentUnavailable (paused) or InvalidAgentConfig with the input's field
    errors."""
    agent = agent_get(agent_id=agent_id, name=agent_name)
    if agent.status != AgentStatus.ENABLED:
        raise AgentUnavailable(f"agent {agent.name} is paused", agent=agent.name)
    if priority not in TaskPriority.values or isinstance(priority, bool):
        raise InvalidAgentConfig("invalid priority", fields={"priority": "must be 1 (low) to 4 (critical)"})
    errors = schema_errors(input, blueprint_class(agent.blueprint).input_schema)
    if errors:
        raise InvalidAgentConfig("invalid task input", fields={f"input.{k}" if k != "(root)" else "input": v
                                                               for k, v in errors.items()})
    task = Task.objects.create(agent=agent, input=input, priority=priority, agent_version=agent.version,
                               correlation_id=get_correlation_id(),
                               created_by=user if user is not None and user.is_authenticated else None)
    actor = _user_actor(user)
    audit_record(actor=actor, verb="task.submitted", target_type="task", target_id=task.pk,
                 data={"agent": agent.name, "priority": priority}, correlation_id=task.correlation_id)
    task.attempt = 1
    task.ack_deadline = timezone.now() + timedelta(seconds=settings.TASK_ACK_TIMEOUT_SECONDS)
    task_transition(task=task, to=S.ASSIGNED, actor=actor, reason="sent to the workers", save=False)
    task.save()
    dispatch(task_id=task.pk, attempt=task.attempt)
    return task


def task_get(*, task_id: int, lock: bool = False) -> Task:
    query = Task.objects.select_for_update() if lock else Task.objects.all()
    try:
        return query.get(pk=task_id)
    except (Task.DoesNotExist, ValueError, TypeError):
        raise TaskNotFound(f"no task {task_id}") from None


def _approvals_close(task: Task) -> None:
    ApprovalRequest.objects.filter(task=task, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELLED, decided_at=timezone.now())


@transaction.atomic
def task_cancel(*, task_id: int, user: AbstractBaseUser | None, reason: str = "") -> Task:
    """Cancel a task in any non-final state; in-flight messages become stale and pending
    approvals are closed. Raises IllegalTransition (409) from a final state."""
    task = task_get(task_id=task_id, lock=True)
    task.attempt += 1
    task.ack_deadline = None
    task.save(update_fields=["attempt", "ack_deadline", "updated_at"])
    task_transition(task=task, to=S.CANCELLED, actor=_user_actor(user), reason=reason or "cancelled")
    _approvals_close(task)
    return task


@transaction.atomic
def task_escalate(*, task_id: int, user: AbstractBaseUser | None, reason: str) -> Task:
    """Hand a task to humans now (F-HITL-5)."""
    task = task_get(task_id=task_id, lock=True)
    task.attempt += 1
    task.ack_deadline = None
    task.last_error = (reason or "escalated manually")[:2000]
    task.save(update_fields=["attempt", "ack_deadline", "last_error", "updated_at"])
    task_transition(task=task, to=S.ESCALATED, actor=_user_actor(user), reason=reason or "escalated manually")
    _approvals_close(task)
    return task


@transaction.atomic
def task_override(*, task_id: int, user: AbstractBaseUser | None, output: Any, reason: str = "") -> Task:
    """A reviewer completes an escalated task with the output they decide."""
    if not isinstance(output, dict):
        raise InvalidAgentConfig("output must be a JSON object", fields={"output": "must be a JSON object"})
    task = task_get(task_id=task_id, lock=True)
    task.output = output
    task.save(update_fields=["output", "updated_at"])
    task_transition(task=task, to=S.COMPLETED, actor=_user_actor(user), reason=reason or "overridden by a reviewer")
    return task


@transaction.atomic
def task_retry(*, task_id: int, user: AbstractBaseUser | None) -> Task:
    """Send an escalated task back to the workers with a fresh retry budget."""
    task = task_get(task_id=task_id, lock=True)
    actor = _user_actor(user)
    task_transition(task=task, to=S.QUEUED, actor=actor, reason="retried by a human")
    task.retry_count = 0
    task.attempt += 1
    task.ack_deadline = timezone.now() + timedelta(seconds=settings.TASK_ACK_TIMEOUT_SECONDS)
    task_transition(task=task, to=S.ASSIGNED, actor=actor, reason="sent to the workers", save=False)
    task.save()
    dispatch(task_id=task.pk, attempt=task.attempt)
    return task


def tasks_overdue(*, now: Any = None) -> list[tuple[int, int]]:
    """(task id, attempt) of tasks whose ack deadline passed while a worker held them."""
    from agents.states import LEASED

    now = now or timezone.now()
    # A paused agent's tasks are held on purpose, not lost: resuming the agent re-sends them.
    return list(Task.objects.filter(state__in=LEASED, ack_deadline__lt=now).exclude(agent__status=AgentStatus.PAUSED)
                .values_list("pk", "attempt"))


@transaction.atomic
def tasks_resend_held() -> int:
    """Re-send the held tasks (runnable, no deadline: stopped at a step boundary while their
    tenant was suspended or their agent paused) of the enabled agents of the current schema.
    In-flight tasks always have a deadline and are left alone."""
    held = Task.objects.select_for_update(skip_locked=True).filter(
        state__in=[S.ASSIGNED, S.ACKED, S.IN_PROGRESS, S.RETRYING], ack_deadline__isnull=True,
        agent__status=AgentStatus.ENABLED)
    count = 0
    for task in held:
        lease_renew(task)
        count += 1
    return count

