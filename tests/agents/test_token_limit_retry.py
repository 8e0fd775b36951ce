"""The tokens-per-month limit holds at a task's start however the start comes: its first message,
or a retry of its first step (the first message was lost, or the step failed). A task that has
recorded a step has started and finishes (agents.limits)."""

from __future__ import annotations

import uuid

import pytest

from agents.lease import task_fail
from agents.models import Task
from agents.outcomes import Outcome
from agents.services import task_submit
from tenants.models import Tenant, UsageDay
from tenants.usage import tokens_in_month, usage_day
from tests.agents.helpers_execution import advance_here, steps_of, transitions_of, triage_agent
from tests.conftest import BILLING_TICKET

pytestmark = pytest.mark.django_db


def _room_for(tenant: Tenant, *, tokens: int) -> None:
    """Leave ``tokens`` of the month to acme (and room for the test's task in flight: tasks
    that earlier tests committed may hold its share)."""
    used = tokens_in_month(tenant_id=tenant.pk, day=usage_day())
    tenant.limit_overrides = {"tokens_per_month": used + tokens, "max_concurrent_tasks": 10_000}
    tenant.save(update_fields=["limit_overrides"])


def _tokens_used_elsewhere(tenant: Tenant, tokens: int) -> None:
    UsageDay.objects.create(
        tenant=tenant, day=usage_day(), model=f"elsewhere-{uuid.uuid4().hex[:8]}", tokens_in=tokens, tokens_out=0
    )


def test_a_retry_of_the_first_step_past_the_months_tokens_escalates_naming_the_limit(in_acme: Tenant) -> None:
    _room_for(in_acme, tokens=1_000)
    task = task_submit(agent_id=triage_agent().pk, input=BILLING_TICKET)
    # Its first message is lost: the sweeper counts the attempt as failed and sends a retry.
    assert task_fail(task_id=task.pk, attempt=task.attempt, error="ack deadline missed") == Outcome.RETRY
    assert Task.objects.get(pk=task.pk).state == "retrying"
    _tokens_used_elsewhere(in_acme, 1_000)  # meanwhile, the month's tokens ran out

    assert advance_here(task.pk) == "finished"

    after = Task.objects.get(pk=task.pk)
    assert after.state == "escalated"
    assert "tokens_per_month" in after.last_error
    assert steps_of(after) == []
    assert transitions_of(after)[-3:] == [
        ("retrying", "acked"),
        ("acked", "in_progress"),
        ("in_progress", "escalated"),
    ]


def test_a_retry_of_a_later_step_finishes_the_started_task(in_acme: Tenant) -> None:
    _room_for(in_acme, tokens=100_000)
    task = task_submit(agent_id=triage_agent().pk, input=BILLING_TICKET)
    assert advance_here(task.pk) == "stepped"  # classify: the task has started
    started = Task.objects.get(pk=task.pk)
    assert task_fail(task_id=task.pk, attempt=started.attempt, error="ack deadline missed") == Outcome.RETRY
    _tokens_used_elsewhere(in_acme, 100_000)

    assert [advance_here(task.pk), advance_here(task.pk)] == ["stepped", "finished"]

    after = Task.objects.get(pk=task.pk)
    assert after.state == "verified", after.last_error
    assert steps_of(after) == [("classify", "record"), ("send_reply", "allow")]
