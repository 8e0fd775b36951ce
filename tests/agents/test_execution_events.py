"""The event hook (agents.events): services publish inside their transaction and subscribers
hear about a change only once it is committed, never about one that was rolled back.

A recorder subscribes in this process; the services run in committed mode, so their
transactions really commit (or roll back). Resolution agents are used because their tasks
cannot finish without an approval, so cancelling them is legal whatever a worker has done.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from agents.events import subscribe
from agents.models import Task
from agents.services import task_cancel, task_submit
from tests.agents.helpers_execution import (BILLING_TICKET, REFUND_TICKET, resolution_agent, triage_agent, use_tenant)

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

    with transaction.atomic():
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
        assert heard == []

    assert heard == [{"type": "task.state", "schema": "acme", "task_id": task.pk, "agent_id": agent.pk,
                      "from_state": "queued", "to_state": "assigned", "reason": "sent to the workers"}]


def test_a_rolled_back_submit_is_never_announced(heard: list[Event]) -> None:
    agent = triage_agent()

    with pytest.raises(Aborted), transaction.atomic():
        task_submit(agent_name=agent.name, input=BILLING_TICKET)
        raise Aborted

    assert heard == []
    assert not Task.objects.filter(agent=agent).exists()


def test_a_cancel_is_announced_after_commit(heard: list[Event]) -> None:
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    heard.clear()

    with transaction.atomic():
        task_cancel(task_id=task.pk, user=None, reason="opened by mistake")
        assert heard == []

    assert [(e["task_id"], e["to_state"], e["reason"]) for e in heard] == [(task.pk, "cancelled",
                                                                              "opened by mistake")]
    assert Task.objects.get(pk=task.pk).state == "cancelled"


def test_a_rolled_back_cancel_is_never_announced(heard: list[Event]) -> None:
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    heard.clear()

    with pytest.raises(Aborted), transaction.atomic():
        task_cancel(task_id=task.pk, user=None)
        raise Aborted

    assert heard == []
    assert Task.objects.get(pk=task.pk).state != "cancelled"


def test_submit_and_cancel_in_one_transaction_are_announced_in_order_after_commit(heard: list[Event]) -> None:
    agent = triage_agent()

    with transaction.atomic():
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
        task_cancel(task_id=task.pk, user=None)
        assert heard == []

    assert [(e["task_id"], e["from_state"], e["to_state"]) for e in heard] == [
        (task.pk, "queued", "assigned"), (task.pk, "assigned", "cancelled")]
