"""Deciding an approval and cancelling (or escalating) its task take their locks in one order:
the approval requests first, then the task. Deciding locks its request and then resumes the
task; a cancel that locked the task first and then closed the requests could hold what the
decision waits for while waiting for what the decision holds, and PostgreSQL would fail one
of them ("deadlock detected").

Both sides run on connections of their own (two threads, each with its own Django
connection), on committed rows. No worker consumes the queues meanwhile (``only_our_workers``):
the tasks stay where the tests put them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agents.models import Agent, Task
from agents.services import task_cancel, task_escalate, task_submit
from config.connection import connection
from hitl.exceptions import ApprovalAlreadyDecided
from hitl.models import ApprovalRequest
from hitl.services import approval_decide
from tenants.models import Tenant
from tests.agents.helpers_execution import (
    advance_here,
    database_connect,
    only_our_workers,
    resolution_agent,
    transitions_of,
    use_tenant,
    user,
    wait_until,
    waiting_for,
)
from tests.conftest import ALICE, REFUND_TICKET

__all__ = ["only_our_workers"]  # the fixture used by the tests below

ROUNDS = 12


class Side(threading.Thread):
    """Runs ``work`` on a connection of its own in the acme schema; keeps its result or error."""

    def __init__(self, work: Callable[[], Any], *, barrier: threading.Barrier | None = None) -> None:
        super().__init__(daemon=True)
        self.work, self.barrier = work, barrier
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid: int | None = None

    def run(self) -> None:
        try:
            use_tenant("acme")
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            if self.barrier is not None:
                self.barrier.wait(timeout=20)
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()


@pytest.fixture
def acme_roomy(committed: None) -> Iterator[Tenant]:
    """acme with room for the tests' agents, runs, pending approvals and tasks in flight
    (earlier tests leave some in flight: no worker runs them here); its limits as they were
    afterwards."""
    acme = Tenant.objects.get(schema_name="acme")
    overrides = dict(acme.limit_overrides)
    roomy = {"max_agents": 1_000, "runs_per_day": 1_000_000, "max_pending_approvals": 1_000}
    acme.limit_overrides = {**overrides, **roomy, "max_concurrent_tasks": 1_000}
    acme.save(update_fields=["limit_overrides"])
    try:
        yield use_tenant("acme")
    finally:
        connection.set_schema_to_public()
        acme.limit_overrides = overrides
        acme.save(update_fields=["limit_overrides"])


def awaiting_approval(agent: Agent) -> tuple[Task, ApprovalRequest]:
    """A resolution task of ``agent``, run in this process up to its refund's approval gate."""
    task = task_submit(agent_id=agent.pk, input=REFUND_TICKET)
    outcomes = [advance_here(task.pk) for _ in range(3)]
    assert outcomes == ["stepped", "stepped", "awaiting_approval"], outcomes
    return Task.objects.get(pk=task.pk), ApprovalRequest.objects.get(task_id=task.pk)


def approve(request: ApprovalRequest) -> Callable[[], str]:
    """What alice's approval of ``request`` does, to run on a Side."""
    return lambda: (
        approval_decide(
            approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash
        ).status
    )


def cancelling(task: Task) -> Callable[[], str]:
    return lambda: task_cancel(task_id=task.pk, user=None, reason="withdrawn").state


def waits(side: Side, events: set[str]) -> bool:
    """Is ``side``'s backend waiting for a lock of one of these kinds (agents' helpers: waiting_for)?"""
    return side.pid is not None and waiting_for(side.pid) in events


@pytest.mark.parametrize(("change", "final"), [(task_cancel, "cancelled"), (task_escalate, "escalated")])
def test_a_cancel_or_escalation_waits_for_a_decision_under_way_instead_of_deadlocking(
    acme_roomy: Tenant, only_our_workers: None, change: Callable[..., Task], final: str
) -> None:
    """The interleaving that deadlocked, forced: the decision holds its request and is stopped
    at its vote (we hold the votes table), the change of the task starts, then the decision
    goes on to resume the task."""
    task, request = awaiting_approval(resolution_agent())

    with database_connect() as votes_held:
        votes_held.execute('LOCK TABLE "acme".hitl_approvalvote IN EXCLUSIVE MODE')
        decide = Side(approve(request))
        decide.start()
        wait_until(lambda: waits(decide, {"relation"}), what="the decision to wait at its vote")
        changer = Side(lambda: change(task_id=task.pk, user=user(ALICE), reason="withdrawn").state)
        changer.start()
        # It waits for a row the decision holds (its request), holding nothing the decision
        # needs next.
        wait_until(
            lambda: waits(changer, {"transactionid", "tuple"}),
            what="the change of the task to wait for the decision's request",
        )
        votes_held.rollback()
    decide.join(30)
    changer.join(30)

    assert not decide.is_alive() and not changer.is_alive()
    assert decide.error is None, decide.error
    assert changer.error is None, changer.error
    assert (decide.result, changer.result) == ("approved", final)
    request.refresh_from_db()
    assert request.status == "approved"
    after = Task.objects.get(pk=task.pk)
    assert after.state == final
    assert transitions_of(after)[-2:] == [("awaiting_approval", "in_progress"), ("in_progress", final)]


def test_approving_and_cancelling_the_same_task_at_once_never_deadlocks(
    acme_roomy: Tenant, only_our_workers: None
) -> None:
    """Released together, again and again: whichever goes first, the other waits and then
    answers as the state it finds says; nobody fails with a deadlock."""
    agent = resolution_agent()
    seen: set[str] = set()
    for _ in range(ROUNDS):
        task, request = awaiting_approval(agent)
        barrier = threading.Barrier(2)
        decide = Side(approve(request), barrier=barrier)
        cancel = Side(cancelling(task), barrier=barrier)
        decide.start()
        cancel.start()
        decide.join(30)
        cancel.join(30)

        assert not decide.is_alive() and not cancel.is_alive()
        assert cancel.error is None, cancel.error
        assert cancel.result == "cancelled"
        request.refresh_from_db()
        if decide.error is None:  # decided first: the cancel found the task resumed
            assert (decide.result, request.status) == ("approved", "approved")
            seen.add("approved first")
        else:  # cancelled first: the request was closed before the decision could lock it
            assert isinstance(decide.error, ApprovalAlreadyDecided), decide.error
            assert request.status == "cancelled"
            seen.add("cancelled first")
        assert Task.objects.get(pk=task.pk).state == "cancelled"
    assert seen  # every round ended in one of the two orders
