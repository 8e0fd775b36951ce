"""What deciding a request tells the others and the decider: the live event of the decision is
published after commit, ahead of the task's message to the workers, never for a decision that
rolled back; the API answers with the request as decided (built from the decision itself), the
same as a fresh read of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.events import subscribe
from agents.models import Task, TaskState
from config.connection import connection
from hitl.models import ApprovalRequest
from hitl.policies import policy_create
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE

from .support import refund_agent, refund_opened_without_engine, refund_waiting, reviewer

Event = dict[str, Any]
Capture = Callable[..., Any]


@pytest.fixture
def heard() -> Iterator[list[Event]]:
    """The decision and task events published in this process while the test runs."""
    events: list[Event] = []
    unsubscribe = subscribe(
        lambda event: events.append(event) if event["type"] in ("approval.decided", "task.state") else None
    )
    try:
        yield events
    finally:
        unsubscribe()


def _approve(client: Client, request: ApprovalRequest) -> Any:
    return client.post(
        f"/api/v1/hitl/{request.pk}/approve/", {"action_hash": request.action_hash}, content_type="application/json"
    )


def test_the_decision_is_announced_before_the_task_goes_back_to_the_workers(
    acme: Tenant,
    acme_client: Client,
    celery_env: dict[str, str],
    heard: list[Event],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_opened_without_engine(refund_agent(acme))
    client = signed_in(acme_client, acme, ann.username)

    with django_capture_on_commit_callbacks(execute=True):
        response = _approve(client, request)

    assert response.status_code == 200, response.content
    assert [event["type"] for event in heard] == ["approval.decided", "task.state"]
    assert heard[0] == {
        "type": "approval.decided",
        "schema": "acme",
        "approval_id": request.pk,
        "task_id": request.task_id,
        "status": "approved",
        "decided_by": ann.username,
        "agent_id": request.task.agent_id,
    }
    assert (heard[1]["task_id"], heard[1]["to_state"]) == (request.task_id, "in_progress")


def test_a_decision_that_rolls_back_announces_nothing(
    acme: Tenant,
    acme_client: Client,
    celery_env: dict[str, str],
    heard: list[Event],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_opened_without_engine(refund_agent(acme))
    Task.objects.filter(pk=request.task_id).update(state=TaskState.CANCELLED)  # no longer waits at its gate
    client = signed_in(acme_client, acme, ann.username)

    with django_capture_on_commit_callbacks(execute=True):
        response = _approve(client, request)

    assert (response.status_code, response.json()["code"]) == (409, "approval_already_decided")
    assert heard == []
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.votes.count()) == ("assigned", None, 0)


def test_the_answer_to_a_decision_is_the_request_as_stored(acme: Tenant, acme_client: Client) -> None:
    ann = reviewer(acme, "ann@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, ann.username)

    response = _approve(client, request)

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    assert response.json() == client.get(f"/api/v1/hitl/{request.pk}/").json()


def test_the_answer_to_a_vote_short_of_the_quorum_is_the_request_as_stored(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    policy_create(
        name="two-for-refunds",
        content={"conditions": {"tools": ["issue_refund"]}, "quorum": 2},
        user=User.objects.get(username=ALICE),
    )
    ann = reviewer(acme, "ann@acme.example")
    bob = reviewer(acme, "bob@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    first = request.assignee
    assert first in (ann, bob)
    client = signed_in(acme_client, acme, first.username)

    response = _approve(client, request)

    assert response.status_code == 200, response.content
    body = response.json()
    # Still open, handed to the other reviewer, one approval of two.
    assert body["status"] == "assigned" and body["assignee"] == ({ann, bob} - {first}).pop().username
    assert (body["quorum_progress"]["approvals"], body["quorum_progress"]["required"]) == (1, 2)
    assert body == client.get(f"/api/v1/hitl/{request.pk}/").json()
