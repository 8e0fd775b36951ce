"""The events the live stream carries besides the task's own: approval requests assigned,
claimed, reminded, breached and decided, agents paused and resumed. Each is published once,
after commit, and names the agent it concerns, so that the stream can scope it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from agents.events import Event, subscribe
from agents.services import agent_status_set
from hitl.assignment import approval_claim, approval_release
from hitl.ladder import approvals_sla_sweep
from hitl.services import approval_decide
from hitl.sla import Ladder, TerminalAction
from tenants.models import Tenant
from tests.agents.helpers_execution import unique
from tests.hitl.support import refund_agent, refund_opened_without_engine, reviewer

SECOND = timedelta(seconds=1)


@pytest.fixture
def recorded() -> Iterator[list[Event]]:
    events: list[Event] = []
    unsubscribe = subscribe(events.append)
    yield events
    unsubscribe()


def _of(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == kind]


def test_pausing_and_resuming_an_agent_publish_events_naming_it(
    acme: Tenant, recorded: list[Event], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    agent = refund_agent(acme, unique("pausable"))
    with django_capture_on_commit_callbacks(execute=True):
        agent_status_set(agent_id=agent.pk, status="paused", user=None)
        agent_status_set(agent_id=agent.pk, status="paused", user=None)  # no change, no event
        agent_status_set(agent_id=agent.pk, status="enabled", user=None)
    kinds = [(event["type"], event["agent_id"]) for event in recorded if event["type"].startswith("agent.")]
    assert kinds == [("agent.paused", agent.pk), ("agent.resumed", agent.pk)]


def test_assignment_reminder_and_decision_events_name_the_requests_task_and_agent(
    acme: Tenant, recorded: list[Event], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    ann = reviewer(acme, unique("ann") + "@acme.example")
    agent = refund_agent(acme, unique("refunds"))
    with django_capture_on_commit_callbacks(execute=True):
        request = refund_opened_without_engine(agent)
    (assigned,) = _of(recorded, "approval.assigned")
    assert (assigned["approval_id"], assigned["task_id"], assigned["agent_id"], assigned["user_id"]) == (
        request.pk,
        request.task_id,
        agent.pk,
        ann.pk,
    )
    assert request.remind_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        approvals_sla_sweep(now=request.remind_at + SECOND)
    (reminder,) = _of(recorded, "approval.reminder")
    assert (reminder["approval_id"], reminder["task_id"], reminder["agent_id"]) == (
        request.pk,
        request.task_id,
        agent.pk,
    )

    with django_capture_on_commit_callbacks(execute=True):
        approval_decide(approval_id=request.pk, user=ann, verdict="approve", seen_hash=request.action_hash)
    (decided,) = _of(recorded, "approval.decided")
    assert (decided["approval_id"], decided["task_id"], decided["status"], decided["decided_by"]) == (
        request.pk,
        request.task_id,
        "approved",
        ann.username,
    )


def test_a_breach_and_the_ladders_terminal_action_are_published_with_the_agent(
    acme: Tenant, recorded: list[Event], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    reviewer(acme, unique("ann") + "@acme.example")
    boss = reviewer(acme, unique("boss") + "@acme.example", role="admin")
    agent = refund_agent(acme, unique("refunds"))
    with django_capture_on_commit_callbacks(execute=True):
        request = refund_opened_without_engine(agent)
    assert request.due_at is not None
    ladder = Ladder(escalations=1, terminal=TerminalAction.EXPIRE)
    with django_capture_on_commit_callbacks(execute=True):
        approvals_sla_sweep(now=request.due_at + SECOND, ladder=ladder)
    (breached,) = _of(recorded, "approval.breached")
    assert (breached["approval_id"], breached["agent_id"], breached["user_id"]) == (request.pk, agent.pk, boss.pk)
    request.refresh_from_db()
    assert request.due_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        approvals_sla_sweep(now=request.due_at + SECOND, ladder=ladder)
    (closed,) = _of(recorded, "approval.decided")
    assert (closed["approval_id"], closed["task_id"], closed["status"]) == (request.pk, request.task_id, "expired")


def test_claiming_and_releasing_a_request_are_published(
    acme: Tenant, recorded: list[Event], django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    agent = refund_agent(acme, unique("refunds"))
    with django_capture_on_commit_callbacks(execute=True):
        request = refund_opened_without_engine(agent)  # nobody has a profile: unassigned
    ann = reviewer(acme, unique("ann") + "@acme.example")
    with django_capture_on_commit_callbacks(execute=True):
        approval_claim(approval_id=request.pk, user=ann)
        approval_release(approval_id=request.pk, user=ann)
    kinds = [
        (e["type"], e["approval_id"], e["user_id"])
        for e in recorded
        if e["type"] in ("approval.assigned", "approval.released")
    ]
    assert kinds == [("approval.assigned", request.pk, ann.pk), ("approval.released", request.pk, None)]
