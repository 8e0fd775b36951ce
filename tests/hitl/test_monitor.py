"""The monitor blueprint: service-level figures per agent from the tenant's own tasks and
approval requests (response and resolution time, SLA breach rate, backlog)."""

from __future__ import annotations

from datetime import timedelta

from agents.models import Step, Task
from config.connection import connection
from hitl.models import ApprovalRequest
from hitl.monitor import sla_metrics
from tenants.models import Tenant
from tests.agents.api_support import agent_make, approval_opened, task_drive, task_make
from tests.agents.helpers_execution import unique, use_tenant, wait_for_state
from tests.conftest import REFUND_TICKET, WorkerHandle


def _refund_requests(tenant: Tenant, count: int) -> list[ApprovalRequest]:
    first = approval_opened(
        tenant, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    more = [
        ApprovalRequest.objects.get(
            task=task_drive(task_make(tenant, first.task.agent, REFUND_TICKET), {"awaiting_approval"})
        )
        for _ in range(count - 1)
    ]
    return [first, *more]


def test_the_monitor_reports_response_resolution_breaches_and_backlog_per_agent(acme: Tenant) -> None:
    decided_fast, decided_slow, breached_open, waiting = _refund_requests(acme, 4)
    for request, seconds in ((decided_fast, 60), (decided_slow, 120)):
        ApprovalRequest.objects.filter(pk=request.pk).update(
            status="approved", decided_at=request.created_at + timedelta(seconds=seconds)
        )
        Task.objects.filter(pk=request.task_id).update(
            state="verified", finished_at=request.task.created_at + timedelta(seconds=seconds * 10)
        )
    ApprovalRequest.objects.filter(pk=breached_open.pk).update(breached_at=breached_open.created_at)
    monitor = agent_make(acme, "sla-watch", "monitor", config={"max_breach_rate": 0.2})

    task = task_drive(task_make(acme, monitor, {"window_hours": 1}), {"completed", "verified", "escalated"})

    assert task.state in ("completed", "verified"), task.last_error
    report = task.output
    assert report is not None
    refunds = report["agents"]["refunds"]
    assert refunds["decided"] == 2
    assert (refunds["response_p50_s"], refunds["response_p95_s"]) == (90.0, 117.0)
    assert refunds["resolved"] == 2
    assert (refunds["resolution_p50_s"], refunds["resolution_p95_s"]) == (900.0, 1170.0)
    assert (refunds["requests"], refunds["breached"], refunds["breach_rate"]) == (4, 1, 0.25)
    assert (refunds["backlog_tasks"], refunds["backlog_approvals"]) == (2, 2)
    assert report["status"] == "attention"
    assert report["alerts"] == ["refunds: SLA breach rate 25% above 20%"]
    assert report["totals"]["breach_rate"] == 0.25
    assert report["window_hours"] == 1
    del waiting  # still open: counted in the backlog above
    assert list(Step.objects.filter(task=task).values_list("action", "decision")) == [("hitl.sla_metrics", "allow")]


def test_the_monitor_only_sees_its_own_tenant(acme: Tenant, beta: Tenant) -> None:
    _refund_requests(acme, 2)
    monitor = agent_make(beta, "sla-watch", "monitor")

    task = task_drive(task_make(beta, monitor, {"window_hours": 24}), {"completed", "verified", "escalated"})

    assert task.output is not None
    assert task.output["status"] == "healthy"
    assert list(task.output["agents"]) == ["sla-watch"]  # itself, in progress while it measured
    assert task.output["totals"]["requests"] == 0


def test_on_a_worker_and_outside_a_transaction_the_families_run_on_their_own_connections(
    committed: None, celery_worker: WorkerHandle
) -> None:
    acme = use_tenant()
    name = unique("sla-watch")
    monitor = agent_make(acme, name, "monitor")

    done = wait_for_state(task_make(acme, monitor, {"window_hours": 2}).pk, {"completed", "verified", "escalated"})

    assert done.state in ("completed", "verified"), done.last_error
    assert done.output is not None
    assert done.output["agents"][name]["backlog_tasks"] == 1  # the monitor's own task, running
    connection.set_tenant(acme)
    assert not connection.in_atomic_block  # so the reading below runs the families on four connections
    now = sla_metrics(window_hours=2)
    assert now["agents"][name]["resolved"] == 1
    assert "backlog_tasks" not in now["agents"][name]  # it has finished since
