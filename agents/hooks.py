"""Hooks through which agents reaches an app above it without importing it.

Apps import downward: hitl imports agents, never the reverse. Yet the engine needs the
approval requests that hitl owns: it opens one when a step needs a human's decision, finds
the decided one of the step it resumes at, and closes a task's open ones when the task is
cancelled or escalated. Those three calls are declared here, and hitl registers its
implementation when Django starts (``hitl.apps``). Without it, a step that needs an approval
fails (and is retried, then escalated) instead of running unreviewed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from agents.authorization import Verdict
    from agents.models import Agent, Task
    from agents.tools import ToolSpec
    from governance.actors import Actor


@dataclass(frozen=True)
class DecidedApproval:
    """A decided request as the engine runs it. ``intact``: the stored action still matches
    the hash the decision was bound to, recomputed just now."""

    id: int
    tool: str
    arguments: dict[str, Any]
    reasoning: str
    approved: bool
    note: str
    intact: bool


@dataclass(frozen=True)
class Gate:
    """Whether a tool call the built-in rules allow or send for approval stops at a gate, as
    the approval policies decide (without any, the built-in verdict stands). ``audit``: what
    to record with the step or the request (the deciding policy version, shadow policies)."""

    needs_approval: bool
    required_role: str
    reason: str
    policy_version_id: int | None = None
    audit: dict[str, Any] = field(default_factory=dict)


class ApprovalGate(Protocol):
    """Decide the gate of one tool call from the built-in ``verdict`` (allow or needs_approval).
    ``rules``: what the database function ``vigil_gate_rules()`` answered in the step's snapshot
    read (agents.statements.SNAPSHOT), so that deciding costs no round trip; None when the
    caller has no snapshot (the gate then reads them itself)."""

    def __call__(
        self, *, agent: Agent, tool: ToolSpec, arguments: dict[str, Any], verdict: Verdict, rules: Any = None
    ) -> Gate: ...


class ApprovalOpen(Protocol):
    """Open the request for step ``step_index`` of ``task``, which the engine has just moved to
    awaiting_approval, inside the engine's transaction. ``gate``: what decided the gate."""

    def __call__(
        self,
        *,
        task: Task,
        step_index: int,
        tool: str,
        level: int,
        arguments: dict[str, Any],
        reasoning: str,
        required_role: str,
        actor: Actor,
        gate: Gate | None = None,
    ) -> object: ...


class ApprovalDecided(Protocol):
    """The latest approved or rejected request for step ``step_index`` of the task, if any."""

    def __call__(self, *, task_id: int, step_index: int) -> DecidedApproval | None: ...


class ApprovalsClose(Protocol):
    """Close the task's pending requests (cancelled or escalated task), inside the caller's
    transaction; returns how many."""

    def __call__(self, *, task_id: int) -> int: ...


@dataclass(frozen=True)
class ApprovalHooks:
    open: ApprovalOpen
    decided: ApprovalDecided
    close: ApprovalsClose
    gate: ApprovalGate | None = None


_approvals: list[ApprovalHooks] = []


def approvals_register(hooks: ApprovalHooks) -> None:
    """Called once at startup by the app that owns approval requests; a second call replaces
    the first (Django may run ``ready`` again in tests)."""
    _approvals[:] = [hooks]


def approvals() -> ApprovalHooks:
    if not _approvals:
        raise ImproperlyConfigured("no app handles approval requests: add hitl to INSTALLED_APPS")
    return _approvals[0]


def approval_gate(
    *, agent: Agent, tool: ToolSpec, arguments: dict[str, Any], verdict: Verdict, rules: Any = None
) -> Gate:
    """The gate of a tool call the built-in rules did not deny: the registered policies' answer,
    or the built-in verdict when no app decides gates."""
    hooks = _approvals[0] if _approvals else None
    if hooks is not None and hooks.gate is not None:
        return hooks.gate(agent=agent, tool=tool, arguments=arguments, verdict=verdict, rules=rules)
    return Gate(
        needs_approval=verdict.outcome == "needs_approval", required_role=verdict.required_role, reason=verdict.reason
    )
