"""Tasks that go back to the workers pass the tenant's admission like new ones (agents.limits):
resumed after a decision, retried by a human, or held while their agent was paused. However
many approvals land at once, the tenant never has more than ``max_concurrent_tasks`` in
flight; the others wait held at their step boundary and go, in order, as slots free.

Tasks are brought to their gates in this process, with no worker consuming the queues
(``only_our_workers``); then a worker of the test's own runs them to the end.
"""

from __future__ import annotations

import threading

from agents.limits import IN_FLIGHT
from agents.models import Task
from agents.services import agent_status_set, task_escalate, task_retry, task_submit, tasks_resend_held
from tenants.models import Tenant
from tests.agents.helpers_execution import (
    FINAL,
    StartWorker,
    only_our_workers,
    resolution_agent,
    transitions_of,
    triage_agent,
    use_tenant,
    user,
    wait_until,
    worker_start,
)
from tests.agents.test_lock_order import Side, acme_roomy, approve, awaiting_approval
from tests.conftest import ALICE, BILLING_TICKET

__all__ = ["acme_roomy", "only_our_workers", "worker_start"]  # the fixtures used by the tests below

SHARE = 3
RESUMED = 8


def share(tenant: Tenant, tasks: int) -> None:
    tenant.limit_overrides = {**tenant.limit_overrides, "max_concurrent_tasks": tasks}
    tenant.save(update_fields=["limit_overrides"])
    use_tenant(tenant.schema_name)


def in_flight() -> int:
    return Task.objects.filter(state__in=IN_FLIGHT, ack_deadline__isnull=False).count()


def test_many_approvals_at_once_never_put_more_than_the_tenants_share_in_flight(
    acme_roomy: Tenant, worker_start: StartWorker
) -> None:
    agent = resolution_agent()
    waiting = [awaiting_approval(agent) for _ in range(RESUMED)]
    ours = Task.objects.filter(agent=agent)
    # Tasks earlier tests left in flight hold slots too (no worker runs them here).
    others = in_flight()
    share(acme_roomy, others + SHARE)

    barrier = threading.Barrier(RESUMED)
    deciders = [Side(approve(request), barrier=barrier) for _, request in waiting]
    for decider in deciders:
        decider.start()
    for decider in deciders:
        decider.join(30)
    assert [(d.error, d.result) for d in deciders] == [(None, "approved")] * RESUMED

    # Every decision resumed its task, but only the share went in flight; the others wait
    # held at their step boundary (in progress, no lease, nothing sent).
    assert in_flight() == others + SHARE
    resumed = ours.filter(state="in_progress")
    assert resumed.count() == RESUMED
    assert resumed.filter(ack_deadline__isnull=False).count() == SHARE
    assert resumed.filter(ack_deadline__isnull=True).count() == RESUMED - SHARE

    # A worker runs them: as each finishes, the next held one goes; never more than the share.
    worker_start(concurrency=2)
    most = 0

    def all_done() -> bool:
        nonlocal most
        flying = ours.filter(state__in=IN_FLIGHT, ack_deadline__isnull=False).count()
        most = max(most, flying)
        assert in_flight() <= others + SHARE
        return ours.filter(state__in=FINAL).count() == RESUMED

    wait_until(all_done, timeout=120, what="the resumed tasks to finish")
    assert 0 < most <= SHARE
    assert set(ours.values_list("state", flat=True)) == {"verified"}
    for task in ours:
        assert ("awaiting_approval", "in_progress") in transitions_of(task)


def test_a_retried_task_and_a_resumed_agents_held_tasks_wait_for_a_free_slot(
    acme_roomy: Tenant, only_our_workers: None
) -> None:
    agent = triage_agent()
    retried = task_submit(agent_id=agent.pk, input=BILLING_TICKET)
    task_escalate(task_id=retried.pk, user=user(ALICE), reason="needs a human")
    held = [task_submit(agent_id=agent.pk, input=BILLING_TICKET) for _ in range(2)]
    agent_status_set(agent_id=agent.pk, status="paused", user=None)
    # Stopped at their step boundary while the agent was paused (what the engine does).
    Task.objects.filter(pk__in=[t.pk for t in held]).update(ack_deadline=None)
    share(acme_roomy, in_flight())  # no slot free

    task_retry(task_id=retried.pk, user=user(ALICE))
    agent_status_set(agent_id=agent.pk, status="enabled", user=None)

    again = Task.objects.get(pk=retried.pk)
    assert (again.state, again.ack_deadline, again.retry_count) == ("queued", None, 0)
    assert set(Task.objects.filter(pk__in=[t.pk for t in held]).values_list("ack_deadline", flat=True)) == {None}

    # One slot frees: the held tasks go first (they have started), in order; then the retried one.
    share(acme_roomy, in_flight() + 1)
    assert tasks_resend_held() == 1
    first, second = (Task.objects.get(pk=t.pk) for t in held)
    assert (first.ack_deadline is not None, second.ack_deadline) == (True, None)
    share(acme_roomy, in_flight() + 2)
    assert tasks_resend_held() == 2
    again = Task.objects.get(pk=retried.pk)
    assert again.state == "assigned" and again.ack_deadline is not None
    assert transitions_of(again)[-2:] == [("escalated", "queued"), ("queued", "assigned")]
    assert Task.objects.get(pk=held[1].pk).ack_deadline is not None
