"""The queue through the API: GET /api/v1/hitl/queue/ (filters, assignee=me, priority then
deadline, paginated, scoped to the agents in sight) and claim / release / reassign."""

from __future__ import annotations

from datetime import timedelta

from django.test import Client

from agents.models import TaskPriority
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in
from tests.conftest import ALICE, RITA

from .support import refund_agent, refund_waiting, review_scope, reviewer


def _ids(client: Client, query: str = "") -> list[int]:
    response = client.get(f"/api/v1/hitl/queue/{query}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_the_queue_is_ordered_by_priority_then_deadline(acme: Tenant, acme_client: Client) -> None:
    agent = refund_agent(acme)
    low = refund_waiting(acme, agent, priority=TaskPriority.LOW)
    high_late = refund_waiting(acme, agent, priority=TaskPriority.HIGH)
    high_soon = refund_waiting(acme, agent, priority=TaskPriority.HIGH)
    critical = refund_waiting(acme, agent, priority=TaskPriority.CRITICAL)
    ApprovalRequest.objects.filter(pk=high_soon.pk).update(due_at=high_late.due_at - timedelta(minutes=5))  # type: ignore[operator]
    client = signed_in(acme_client, acme, RITA)
    assert _ids(client) == [critical.pk, high_soon.pk, high_late.pk, low.pk]
    assert _ids(client, "?priority=high") == [high_soon.pk, high_late.pk]
    row = client.get("/api/v1/hitl/queue/").json()["results"][0]
    assert (row["priority"], row["status"], row["agent"]) == ("critical", "pending", "refunds")


def test_assignee_me_lists_only_my_requests_and_claim_puts_one_there(acme: Tenant, acme_client: Client) -> None:
    agent = refund_agent(acme)
    first, second = refund_waiting(acme, agent), refund_waiting(acme, agent)
    client = signed_in(acme_client, acme, RITA)
    assert _ids(client, "?assignee=me") == []
    claimed = client.post(f"/api/v1/hitl/{second.pk}/claim/")
    assert claimed.status_code == 200, claimed.content
    assert (claimed.json()["status"], claimed.json()["assignee"]) == ("assigned", RITA)
    assert _ids(client, "?assignee=me") == [second.pk]
    assert _ids(client, "?assignee=none") == [first.pk]
    assert _ids(client, "?status=assigned") == [second.pk]
    released = client.post(f"/api/v1/hitl/{second.pk}/release/")
    assert (released.status_code, released.json()["assignee"]) == (200, None)
    assert _ids(client, "?assignee=me") == []


def test_the_queue_is_paginated_fifty_a_page(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    ApprovalRequest.objects.bulk_create(
        [
            ApprovalRequest(
                task_id=request.task_id,
                step_index=100 + n,
                tool=request.tool,
                arguments=request.arguments,
                action_hash=request.action_hash,
                privilege_level=request.privilege_level,
                due_at=request.due_at,
            )
            for n in range(50)
        ]
    )
    client = signed_in(acme_client, acme, RITA)
    first = client.get("/api/v1/hitl/queue/").json()
    assert (first["count"], len(first["results"]), first["next"] is not None) == (51, 50, True)
    assert len(client.get("/api/v1/hitl/queue/?page=2").json()["results"]) == 1


def test_a_scoped_reviewer_sees_and_claims_only_their_agents_requests(acme: Tenant, acme_client: Client) -> None:
    scoped = member_add(acme, "scoped@acme.example", "reviewer")
    mine, other = refund_agent(acme, "refunds-eu"), refund_agent(acme, "refunds-us")
    review_scope(acme, scoped, mine)
    visible, hidden = refund_waiting(acme, mine), refund_waiting(acme, other)
    client = signed_in(acme_client, acme, scoped.username)
    assert _ids(client) == [visible.pk]
    assert client.get(f"/api/v1/hitl/{hidden.pk}/").status_code == 404
    refused = client.post(f"/api/v1/hitl/{hidden.pk}/claim/")
    assert (refused.status_code, refused.json()["code"]) == (404, "approval_not_found")


def test_the_detail_shows_the_evidence_and_the_history(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    body = signed_in(acme_client, acme, RITA).get(f"/api/v1/hitl/{request.pk}/").json()
    assert body["evidence"]["action"]["tool"] == "issue_refund" and body["evidence_hash"] == request.evidence_hash
    assert [event["kind"] for event in body["history"]] == ["opened"]


def test_an_admin_reassigns_through_the_api_and_a_reviewer_may_not(acme: Tenant, acme_client: Client) -> None:
    holder = reviewer(acme, "holder@acme.example")
    request = refund_waiting(acme, refund_agent(acme))
    assert request.assignee == holder
    rita = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)
    refused = rita.post(f"/api/v1/hitl/{request.pk}/reassign/", {"user": RITA}, content_type="application/json")
    assert refused.status_code == 403
    admin = signed_in(acme_client, acme, ALICE)
    moved = admin.post(f"/api/v1/hitl/{request.pk}/reassign/", {"user": RITA}, content_type="application/json")
    assert (moved.status_code, moved.json()["assignee"]) == (200, RITA)


def test_a_viewer_reads_the_queue_but_cannot_claim(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    member_add(acme, "vic@acme.example", "viewer")
    client = signed_in(acme_client, acme, "vic@acme.example")
    assert _ids(client) == [request.pk]
    assert client.post(f"/api/v1/hitl/{request.pk}/claim/").status_code == 403
