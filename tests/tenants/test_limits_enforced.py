"""Tier limits are enforced by the services: a refusal names the limit, its maximum and what is
used ({"code": "limit_exceeded", "extra": {"limit", "max", "used"}}), and nothing of the refused
change is written. Concurrency: a tenant's tasks beyond its share wait queued, unsent, and go
when one of its tasks leaves flight."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from agents.limits import LimitExceeded
from agents.models import Agent, Task
from agents.services import agent_create, agent_status_set, task_cancel, task_submit
from governance.models import AuditEvent
from tenants.models import Tenant, UsageDay
from tenants.usage import usage_day
from tests.agents.api_support import signed_in, task_drive
from tests.agents.helpers_execution import advance_here, resolution_agent, triage_agent, unique
from tests.conftest import ALICE, BILLING_TICKET, REFUND_TICKET

pytestmark = pytest.mark.django_db


@pytest.fixture
def limited(in_acme: Tenant) -> Iterator[Any]:
    """Set acme's overrides for one test (rolled back with it)."""

    def _limit(**overrides: int) -> Tenant:
        in_acme.limit_overrides = overrides
        in_acme.save(update_fields=["limit_overrides"])
        return in_acme

    yield _limit


def _refusal(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["code"] == "limit_exceeded", body
    return dict(body["extra"])


def test_max_agents_refuses_the_next_agent_with_403_and_writes_nothing(limited: Any, acme_client: Client) -> None:
    enabled = Agent.objects.filter(status="enabled")
    limited(max_agents=enabled.count() + 1)
    paused = agent_create(name=unique("paused"), blueprint="triage")
    agent_status_set(agent_id=paused.pk, status="paused", user=None)  # does not count
    agent_create(name=unique("last"), blueprint="triage")
    agents, events = enabled.count(), AuditEvent.objects.count()

    with pytest.raises(LimitExceeded) as refused:
        agent_create(name=unique("one-too-many"), blueprint="triage")
    assert (refused.value.status, refused.value.extra) == (403, {"limit": "max_agents", "max": agents, "used": agents})

    signed_in(acme_client, limited(max_agents=agents), ALICE)
    events = AuditEvent.objects.count()
    response = acme_client.post(
        "/api/v1/agents/", {"name": unique("api"), "blueprint": "triage"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert _refusal(response) == {"limit": "max_agents", "max": agents, "used": agents}
    assert "max_agents" in response.json()["detail"]
    assert (enabled.count(), AuditEvent.objects.count()) == (agents, events)

    # Resuming a paused agent is checked like creating one.
    with pytest.raises(LimitExceeded) as refused:
        agent_status_set(agent_id=paused.pk, status="enabled", user=None)
    assert refused.value.extra == {"limit": "max_agents", "max": agents, "used": agents}
    assert Agent.objects.get(pk=paused.pk).status == "paused"


def test_runs_per_day_refuses_the_next_submit_with_429(limited: Any, acme_client: Client) -> None:
    agent = triage_agent()
    runs_today = sum(UsageDay.objects.filter(tenant=limited(), day=usage_day()).values_list("runs", flat=True))
    limited(runs_per_day=runs_today + 2)
    task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    tasks = Task.objects.count()

    signed_in(acme_client, limited(runs_per_day=runs_today + 2), ALICE)
    response = acme_client.post(
        f"/api/v1/agents/{agent.pk}/execute/", {"input": BILLING_TICKET}, content_type="application/json"
    )

    assert response.status_code == 429, response.content
    assert _refusal(response) == {"limit": "runs_per_day", "max": runs_today + 2, "used": runs_today + 2}
    assert Task.objects.count() == tasks


def test_tokens_per_month_refuses_submits_and_escalates_a_task_at_its_start(limited: Any) -> None:
    tenant = limited(tokens_per_month=1_000)
    agent = triage_agent()
    started = task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    UsageDay.objects.create(tenant=tenant, day=usage_day(), model="elsewhere", tokens_in=600, tokens_out=400)

    with pytest.raises(LimitExceeded) as refused:
        task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    assert (refused.value.status, refused.value.extra["limit"]) == (429, "tokens_per_month")
    assert refused.value.extra["used"] >= 1_000

    # A task sent before the tokens ran out escalates at its first step, the limit named.
    assert advance_here(started.pk) == "finished"
    started.refresh_from_db()
    assert started.state == "escalated"
    assert "tokens_per_month" in started.last_error
    assert not started.steps.exists()


def test_a_gate_beyond_max_pending_approvals_escalates_the_task_instead(limited: Any) -> None:
    limited(max_pending_approvals=Task.objects.filter(state="awaiting_approval").count() + 1)
    agent = resolution_agent()
    first = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET), {"awaiting_approval"})

    second = task_drive(task_submit(agent_id=agent.pk, input=REFUND_TICKET), {"escalated", "awaiting_approval"})

    assert first.approvals.count() == 1
    assert second.state == "escalated"
    assert "max_pending_approvals" in second.last_error
    assert second.approvals.count() == 0


def test_tasks_beyond_the_concurrency_share_wait_queued_and_go_in_order_as_slots_free(limited: Any) -> None:
    in_flight = Task.objects.filter(ack_deadline__isnull=False, state__in=["assigned", "acked", "in_progress"])
    limited(max_concurrent_tasks=in_flight.count() + 1)
    agent = triage_agent()

    first, second, third = (task_submit(agent_id=agent.pk, input=BILLING_TICKET) for _ in range(3))

    assert (first.state, first.attempt) == ("assigned", 1) and first.ack_deadline is not None
    for waiting in (second, third):
        waiting.refresh_from_db()
        assert (waiting.state, waiting.ack_deadline) == ("queued", None)

    # The first finishes: the second is sent in the same transaction, the third still waits.
    task_drive(first, {"verified"})
    second.refresh_from_db()
    third.refresh_from_db()
    assert (second.state, third.state) == ("assigned", "queued")
    assert second.ack_deadline is not None

    # Cancelling the running one frees its slot too.
    task_cancel(task_id=second.pk, user=None, reason="test")
    third.refresh_from_db()
    assert third.state == "assigned"


def test_the_admin_refuses_an_agent_past_max_agents_with_a_message_and_writes_nothing(
    limited: Any, acme_client: Client
) -> None:
    agents = Agent.objects.filter(status="enabled").count()
    signed_in(acme_client, limited(max_agents=agents), ALICE)
    events = AuditEvent.objects.count()

    response = acme_client.post(
        "/admin/agents/agent/add/",
        {
            "name": "one-too-many",
            "blueprint": "triage",
            "config": "{}",
            "model_settings": '{"provider": "offline"}',
            "privilege_ceiling": 2,
            "automation_level": "semi_auto",
            "reason": "more",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "at most" in response.content.decode() and "max_agents" in response.content.decode()
    assert not Agent.objects.filter(name="one-too-many").exists()
    assert AuditEvent.objects.count() == events
