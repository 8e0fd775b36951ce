"""The event hook (agents.events): services publish inside their transaction and subscribers
hear about a change only once it is committed, never about one that was rolled back.

A recorder subscribes in this process; the services run in committed mode, so their
transactions really commit (or roll back). Resolution agents are used because their tasks
cannot finish without an approval, so cancelling them is legal whatever a worker has done.
(``celery_env`` points the messages at the session's broker; no worker consumes them here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from agents.events import subscribe
from agents.models import Task
from agents.services import task_cancel, task_submit
from agents.states import task_transition
from governance.actors import Actor
from tests.agents.helpers_execution import database_connect, resolution_agent, triage_agent, use_tenant
from tests.conftest import BILLING_TICKET, REFUND_TICKET

Event = dict[str, Any]


class Aborted(Exception):
    pass


@pytest.fixture
def heard(committed: None, celery_env: dict[str, str]) -> Iterator[list[Event]]:
    """The task.state events published in this process while the test runs."""
    events: list[Event] = []
    unsubscribe = subscribe(lambda event: events.append(event) if event["type"] == "task.state" else None)
    use_tenant("acme")
    try:
        yield events
    finally:
        unsubscribe()


def test_a_submitted_task_is_announced_only_after_its_transaction_commits(heard: list[Event]) -> None:
    agent = triage_agent()
    seen_committed: list[bool] = []

    def committed_when_heard(event: Event) -> None:
        # Another connection sees the row only once the submit's transaction has committed.
        with database_connect(autocommit=True) as conn:
            seen_committed.append(
                bool(conn.execute("SELECT 1 FROM acme.agents_task WHERE id = %s", [event["task_id"]]).fetchone())
            )

    unsubscribe = subscribe(lambda event: committed_when_heard(event) if event["type"] == "task.state" else None)
    try:
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
    finally:
        unsubscribe()

    assert heard == [
        {
            "type": "task.state",
            "schema": "acme",
            "task_id": task.pk,
            "agent_id": agent.pk,
            "from_state": "queued",
            "to_state": "assigned",
            "reason": "sent to the workers",
        }
    ]
    assert seen_committed == [True]


def test_a_cancel_is_announced_after_commit(heard: list[Event]) -> None:
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    heard.clear()

    task_cancel(task_id=task.pk, user=None, reason="opened by mistake")

    assert [(e["task_id"], e["to_state"], e["reason"]) for e in heard] == [(task.pk, "cancelled", "opened by mistake")]
    assert Task.objects.get(pk=task.pk).state == "cancelled"


def test_a_rolled_back_transition_is_never_announced(heard: list[Event]) -> None:
    """Services are durable (each its own transaction), so the rollback is shown on the state
    machine's writer, which every service's change goes through."""
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    heard.clear()

    with pytest.raises(Aborted), transaction.atomic():
        task_transition(
            task=Task.objects.select_for_update().get(pk=task.pk), to="cancelled", actor=Actor.system("test")
        )
        raise Aborted

    assert heard == []
    assert Task.objects.get(pk=task.pk).state != "cancelled"


def test_two_transitions_in_one_transaction_are_announced_in_order_after_commit(heard: list[Event]) -> None:
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    heard.clear()

    with transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=task.pk)
        source = locked.state  # a worker of another test module may have advanced it
        task_transition(task=locked, to="escalated", actor=Actor.system("test"), reason="by hand")
        task_transition(task=locked, to="cancelled", actor=Actor.system("test"))
        assert heard == []

    assert [(e["task_id"], e["from_state"], e["to_state"]) for e in heard] == [
        (task.pk, source, "escalated"),
        (task.pk, "escalated", "cancelled"),
    ]


def test_a_service_called_inside_another_transaction_is_refused_and_announces_nothing(heard: list[Event]) -> None:
    """Services called by the API are durable: one never joins a caller's transaction, where
    its change (and its announcement) would depend on what the caller does next."""
    agent = triage_agent()

    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        task_submit(agent_name=agent.name, input=BILLING_TICKET)

    assert heard == []
    assert not Task.objects.filter(agent=agent).exists()
