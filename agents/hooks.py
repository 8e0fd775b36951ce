"""Hooks through which agents reaches an app above it without importing it.

Apps import downward: hitl imports agents, never the reverse. Yet the engine needs the
approval requests that hitl owns: it opens one when a step needs a human's decision, finds
the decided one of the step it resumes at, and closes a task's open ones when the task is
cancelled or escalated. Those three calls are declared here, and hitl registers its
implementation when Django starts (``hitl.apps``). Without it, a step that needs an approval
fails (and is retried, then escalated) instead of running unreviewed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from agents.models import Task
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


class ApprovalOpen(Protocol):
    """Open the request for step ``step_index`` of ``task``, which the engine has just moved to
    awaiting_approval, inside the engine's transaction."""

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


_approvals: list[ApprovalHooks] = []


def approvals_register(hooks: ApprovalHooks) -> None:
    """Called once at startup by the app that owns approval requests; a second call replaces
    the first (Django may run ``ready`` again in tests)."""
    _approvals[:] = [hooks]


def approvals() -> ApprovalHooks:
    if not _approvals:
        raise ImproperlyConfigured("no app handles approval requests: add hitl to INSTALLED_APPS")
    return _approvals[0]
