"""Fair scheduling on the shared ``steps`` queue, on a real worker: a tenant that floods the queue
gets its share of tasks in flight (``max_concurrent_tasks``), the rest wait queued and unsent,
so another tenant's task is not stuck behind the flood. Proved by counting, not by timing: while
beta's one task ran from submit to verified, only a few of acme's 2,000 tasks finished, and
most of them were still queued when it was done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.limits import IN_FLIGHT
from agents.models import Agent, Task
from agents.services import agent_create, agent_status_set, task_cancel, task_submit, tasks_resend_held
from config.connection import connection
from tenants.models import Tenant, UsageDay
from tests.agents.helpers_execution import unique, wait_for_state, wait_until
from tests.conftest import BILLING_TICKET, WorkerHandle

pytestmark = pytest.mark.slow

FLOOD = 2_000
SHARE = 3


@pytest.fixture
def acme_flooding(committed: None, celery_worker: WorkerHandle) -> Iterator[tuple[Tenant, Agent]]:
    """acme with a share of SHARE tasks in flight and room for the flood's runs; afterwards its
    limits, its usage rows and its queue are as they were."""
    acme = Tenant.objects.get(schema_name="acme")
    overrides = dict(acme.limit_overrides)
    usage = list(UsageDay.objects.filter(tenant=acme).values())
    acme.limit_overrides = {**overrides, "max_concurrent_tasks": SHARE, "runs_per_day": 1_000_000}
    acme.save(update_fields=["limit_overrides"])
    connection.set_tenant(acme)
    agent = agent_create(name=unique("flood"), blueprint="triage")
    try:
        yield acme, agent
    finally:
        connection.set_tenant(acme)
        agent_status_set(agent_id=agent.pk, status="paused", user=None)  # nothing more of it is sent
        for task_id in Task.objects.filter(agent=agent, state="queued").values_list("pk", flat=True):
            task_cancel(task_id=task_id, user=None, reason="end of the flood test")
        connection.set_schema_to_public()
        acme.limit_overrides = overrides
        acme.save(update_fields=["limit_overrides"])
        UsageDay.objects.filter(tenant=acme).delete()
        UsageDay.objects.bulk_create([UsageDay(**row) for row in usage])


def test_a_flood_in_one_tenant_does_not_hold_up_another_tenants_task(acme_flooding: tuple[Tenant, Agent]) -> None:
    acme, flood_agent = acme_flooding
    # The flood is submitted while acme may run nothing, so that all of it waits at once (the
    # worker would otherwise keep up with a test submitting one task at a time).
    share(acme, 0)
    flood = [task_submit(agent_id=flood_agent.pk, input=BILLING_TICKET).pk for _ in range(FLOOD)]
    in_acme = Task.objects.filter(agent=flood_agent)
    assert in_acme.filter(state="queued", ack_deadline__isnull=True).count() == FLOOD

    # Tasks earlier tests left in flight in acme hold slots too (no sweeper runs here).
    others = Task.objects.filter(ack_deadline__isnull=False, state__in=IN_FLIGHT).count()
    share(acme, others + SHARE)
    assert tasks_resend_held() >= SHARE  # what beat's sweep does: admit up to the share
    connection.set_tenant(Tenant.objects.get(schema_name="beta"))
    other = task_submit(agent_id=agent_create(name=unique("other"), blueprint="triage").pk, input=BILLING_TICKET)
    done = wait_for_state(other.pk, {"verified"}, timeout=120)

    connection.set_tenant(acme)
    finished_meanwhile = in_acme.filter(finished_at__gte=other.created_at, finished_at__lte=done.finished_at).count()
    still_queued = in_acme.filter(state="queued").count()
    # While beta's task ran, acme's steps went on only in acme's share of the queue: a few of
    # its tasks finished, and nearly all of the flood was still waiting its turn.
    assert finished_meanwhile <= 4 * SHARE, finished_meanwhile
    assert still_queued >= FLOOD - 100, still_queued
    # The flood itself moves on, in order, never more than its share in flight.
    wait_until(lambda: in_acme.filter(state="verified").count() >= 3 * SHARE, timeout=60, what="acme's tasks")
    assert in_acme.filter(ack_deadline__isnull=False).count() <= others + SHARE
    started = list(in_acme.exclude(state="queued").order_by("pk").values_list("pk", flat=True))
    assert started == flood[: len(started)]


def share(tenant: Tenant, tasks: int) -> None:
    tenant.limit_overrides = {**tenant.limit_overrides, "max_concurrent_tasks": tasks}
    tenant.save(update_fields=["limit_overrides"])
