"""Tasks through the API: execute, list, detail, cancel, escalate, override, retry, events.

These run in the rolled-back test transaction, where nothing is sent to a worker: tasks stay
where the API leaves them unless a test advances them in this process (``task_drive``).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.models import Task, TaskEvent
from governance.models import AuditEvent
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET, REFUND_TICKET, RITA

from .api_support import agent_make, approval_opened, signed_in, task_drive, task_make


@pytest.fixture
def alice(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, ALICE)


@pytest.fixture
def rita(acme: Tenant) -> Client:
    return signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)


def _post(client: Client, path: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(path, body or {}, content_type="application/json")


def test_execute_returns_202_with_the_tasks_url_when_no_worker_finishes_it_in_time(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    response = _post(alice, "/api/v1/agents/front-desk/execute/?wait=0.2", {"input": BILLING_TICKET, "priority": 3})
    assert response.status_code == 202
    body = response.json()
    task = Task.objects.get(agent=agent)
    assert response["Location"] == f"/api/v1/tasks/{task.pk}/"
    assert body["url"] == f"http://acme.localhost/api/v1/tasks/{task.pk}/"
    assert (body["id"], body["state"], body["agent"], body["priority"]) == (task.pk, "assigned", "front-desk", 3)
    assert task.created_by is not None
    assert (task.input, task.priority, task.created_by.username, task.agent_version) == (BILLING_TICKET, 3, ALICE, 1)
    assert list(task.events.values_list("from_state", "to_state")) == [("queued", "assigned")]
    assert AuditEvent.objects.filter(verb="task.submitted", target_id=str(task.pk), actor_label=ALICE).exists()


def test_the_location_of_an_accepted_task_serves_it(acme: Tenant, alice: Client) -> None:
    agent_make(acme, "front-desk")
    accepted = _post(alice, "/api/v1/agents/front-desk/execute/", {"input": BILLING_TICKET})
    response = alice.get(accepted["Location"])
    assert response.status_code == 200
    assert response.json()["id"] == accepted.json()["id"] == Task.objects.get().pk


def test_task_list_filters_by_state(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    kept, cancelled, escalated = (task_make(acme, agent) for _ in range(3))
    _post(alice, f"/api/v1/tasks/{cancelled.pk}/cancel/")
    _post(alice, f"/api/v1/tasks/{escalated.pk}/escalate/")
    only_cancelled = alice.get("/api/v1/tasks/?state=cancelled").json()
    assert [t["id"] for t in only_cancelled["results"]] == [cancelled.pk]
    either = alice.get("/api/v1/tasks/?state=cancelled&state=escalated&ordering=created_at").json()
    assert [t["id"] for t in either["results"]] == [cancelled.pk, escalated.pk]
    assert Task.objects.get(pk=kept.pk).state == "assigned"
    assert alice.get("/api/v1/tasks/?state=exploded").status_code == 400


def test_task_list_filters_by_agent_name(acme: Tenant, alice: Client) -> None:
    desk = agent_make(acme, "front-desk")
    refunds = agent_make(acme, "refunds", "resolution")
    mine = task_make(acme, refunds, REFUND_TICKET)
    task_make(acme, desk)
    response = alice.get("/api/v1/tasks/?agent=refunds")
    assert response.status_code == 200
    assert [(t["id"], t["agent"]) for t in response.json()["results"]] == [(mine.pk, "refunds")]
    assert alice.get("/api/v1/tasks/?agent=nobody").json()["count"] == 0


def test_task_list_filters_by_priority(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    urgent = task_make(acme, agent, priority=4)
    task_make(acme, agent, priority=1)
    task_make(acme, agent, priority=2)
    response = alice.get("/api/v1/tasks/?priority=4")
    assert [(t["id"], t["priority"]) for t in response.json()["results"]] == [(urgent.pk, 4)]
    assert Task.objects.filter(priority=4).count() == 1


def test_task_list_is_paginated_newest_first(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    ids = [task_make(acme, agent).pk for _ in range(51)]
    first = alice.get("/api/v1/tasks/").json()
    assert first["count"] == 51 == Task.objects.count()
    assert [t["id"] for t in first["results"]] == ids[::-1][:50]
    second = alice.get("/api/v1/tasks/?page=2").json()
    assert [t["id"] for t in second["results"]] == [ids[0]]
    assert second["next"] is None and second["previous"]


def test_task_detail_includes_its_steps_and_events(acme: Tenant, alice: Client) -> None:
    task = task_drive(task_make(acme, agent_make(acme, "front-desk")), {"verified"})
    response = alice.get(f"/api/v1/tasks/{task.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "verified" and body["output"]["category"] == "billing"
    assert [(s["index"], s["action"], s["decision"]) for s in body["steps"]] == [
        (0, "classify", "record"),
        (1, "send_reply", "allow"),
    ]
    assert [(e["from_state"], e["to_state"]) for e in body["events"]] == list(
        TaskEvent.objects.filter(task=task).order_by("id").values_list("from_state", "to_state")
    )
    assert [e["to_state"] for e in body["events"]] == ["assigned", "acked", "in_progress", "completed", "verified"]


def test_the_task_list_leaves_steps_and_events_out(acme: Tenant, alice: Client) -> None:
    task_drive(task_make(acme, agent_make(acme, "front-desk")), {"verified"})
    (listed,) = alice.get("/api/v1/tasks/").json()["results"]
    assert "steps" not in listed and "events" not in listed


def test_cancelling_a_task_moves_it_to_cancelled(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    response = _post(alice, f"/api/v1/tasks/{task.pk}/cancel/", {"reason": "customer withdrew"})
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["events"][-1]["reason"] == "customer withdrew"
    task.refresh_from_db()
    assert (task.state, task.attempt) == ("cancelled", 2)
    assert task.finished_at is not None
    last = task.events.order_by("id").last()
    assert last is not None
    assert (last.from_state, last.to_state, last.actor) == ("assigned", "cancelled", f"user:{ALICE}")


def test_cancelling_a_cancelled_task_is_refused_with_409_illegal_transition(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _post(alice, f"/api/v1/tasks/{task.pk}/cancel/")
    events = TaskEvent.objects.filter(task=task).count()
    response = _post(alice, f"/api/v1/tasks/{task.pk}/cancel/")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "illegal_transition"
    assert body["extra"] == {"task": task.pk, "state": "cancelled", "to": "cancelled"}
    task.refresh_from_db()
    assert (task.state, task.attempt) == ("cancelled", 2)
    assert TaskEvent.objects.filter(task=task).count() == events


def test_cancelling_a_task_awaiting_approval_closes_its_approval(acme: Tenant, alice: Client) -> None:
    approval = approval_opened(
        acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    response = _post(alice, f"/api/v1/tasks/{approval.task_id}/cancel/")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    approval.refresh_from_db()
    assert approval.status == "cancelled" and approval.decided_by is None


def test_a_reviewer_escalates_a_task_to_humans(acme: Tenant, rita: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    response = _post(rita, f"/api/v1/tasks/{task.pk}/escalate/", {"reason": "VIP customer"})
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["last_error"]) == ("escalated", "VIP customer")
    task.refresh_from_db()
    assert (task.state, task.last_error, task.attempt) == ("escalated", "VIP customer", 2)
    last = task.events.order_by("id").last()
    assert last is not None
    assert last.actor == f"user:{RITA}"


def test_a_reviewer_overrides_an_escalated_task_with_their_output(acme: Tenant, rita: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _post(rita, f"/api/v1/tasks/{task.pk}/escalate/")
    decided = {"category": "billing", "note": "handled by phone"}
    response = _post(rita, f"/api/v1/tasks/{task.pk}/override/", {"output": decided, "reason": "called the customer"})
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["output"]) == ("completed", decided)
    task.refresh_from_db()
    assert (task.state, task.output) == ("completed", decided)
    last = task.events.order_by("id").last()
    assert last is not None
    assert (last.from_state, last.to_state, last.reason) == ("escalated", "completed", "called the customer")


def test_overriding_a_task_that_is_not_escalated_is_refused_with_409(acme: Tenant, rita: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    response = _post(rita, f"/api/v1/tasks/{task.pk}/override/", {"output": {"category": "billing"}})
    assert response.status_code == 409
    assert response.json()["code"] == "illegal_transition"
    task.refresh_from_db()
    assert (task.state, task.output) == ("assigned", None)


def test_overriding_with_an_output_that_is_not_an_object_is_refused(acme: Tenant, rita: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _post(rita, f"/api/v1/tasks/{task.pk}/escalate/")
    response = _post(rita, f"/api/v1/tasks/{task.pk}/override/", {"output": ["billing"]})
    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"output": "must be a JSON object"}
    task.refresh_from_db()
    assert (task.state, task.output) == ("escalated", None)


def test_retrying_an_escalated_task_sends_it_back_to_the_workers(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _post(alice, f"/api/v1/tasks/{task.pk}/escalate/")
    response = _post(alice, f"/api/v1/tasks/{task.pk}/retry/")
    assert response.status_code == 200 and response.json()["state"] == "assigned"
    task.refresh_from_db()
    assert (task.state, task.retry_count, task.attempt) == ("assigned", 0, 3)
    assert list(task.events.order_by("id").values_list("to_state", flat=True)) == [
        "assigned",
        "escalated",
        "queued",
        "assigned",
    ]


def test_task_events_list_every_transition_in_order(acme: Tenant, alice: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _post(alice, f"/api/v1/tasks/{task.pk}/escalate/", {"reason": "unclear"})
    _post(alice, f"/api/v1/tasks/{task.pk}/cancel/")
    response = alice.get(f"/api/v1/tasks/{task.pk}/events/")
    assert response.status_code == 200
    events = response.json()["results"]
    assert [(e["from_state"], e["to_state"], e["actor"]) for e in events] == [
        ("queued", "assigned", "system:api"),
        ("assigned", "escalated", f"user:{ALICE}"),
        ("escalated", "cancelled", f"user:{ALICE}"),
    ]
    assert [e["id"] for e in events] == list(
        TaskEvent.objects.filter(task=task).order_by("id").values_list("id", flat=True)
    )


def test_the_event_store_filters_by_task_newest_first(acme: Tenant, alice: Client) -> None:
    agent = agent_make(acme, "front-desk")
    task, other = task_make(acme, agent), task_make(acme, agent)
    _post(alice, f"/api/v1/tasks/{task.pk}/cancel/")
    response = alice.get(f"/api/v1/events/?task={task.pk}")
    assert [(e["task"], e["to_state"]) for e in response.json()["results"]] == [
        (task.pk, "cancelled"),
        (task.pk, "assigned"),
    ]
    assert TaskEvent.objects.filter(task=other).count() == 1


def test_an_approval_waiting_task_shows_awaiting_approval_in_its_detail(acme: Tenant, alice: Client) -> None:
    approval = approval_opened(
        acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    body = alice.get(f"/api/v1/tasks/{approval.task_id}/").json()
    assert body["state"] == "awaiting_approval"
    assert [s["action"] for s in body["steps"]] == ["classify", "draft"]
    assert ApprovalRequest.objects.get(task_id=body["id"]).step_index == len(body["steps"])
