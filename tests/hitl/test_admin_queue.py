"""The reviewer workspace in the admin: My queue, Team queue and the decision page (evidence,
approve / edit / reject with a reason / claim), scoped like the API."""

from __future__ import annotations

import json

from django.test import Client

from agents.models import TaskPriority
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import REFUND_ARGUMENTS, RITA

from .support import refund_agent, refund_waiting, review_scope, reviewer, staff

QUEUE, TEAM = "/admin/hitl/approvalrequest/queue/", "/admin/hitl/approvalrequest/team/"


def _decide_url(request: ApprovalRequest) -> str:
    return f"/admin/hitl/approvalrequest/{request.pk}/decide/"


def test_my_queue_lists_my_requests_by_priority_and_the_team_queue_lists_all(acme: Tenant, acme_client: Client) -> None:
    ann = reviewer(acme, "ann@acme.example")
    agent = refund_agent(acme)
    low = refund_waiting(acme, agent, priority=TaskPriority.LOW)
    critical = refund_waiting(acme, agent, priority=TaskPriority.CRITICAL)
    ApprovalRequest.objects.filter(pk=low.pk).update(assignee=None, status="pending")
    client = signed_in(acme_client, acme, ann.username)
    mine = client.get(QUEUE)
    assert mine.status_code == 200
    assert [r.pk for r in mine.context["page"]] == [critical.pk]
    team = client.get(TEAM)
    assert [r.pk for r in team.context["page"]] == [critical.pk, low.pk]
    assert _decide_url(critical) in team.content.decode()


def test_the_decision_page_shows_the_evidence_and_the_keyboard_form(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    page = signed_in(acme_client, acme, RITA).get(_decide_url(request))
    html = page.content.decode()
    assert page.status_code == 200
    assert request.evidence_hash in html and "classify" in html and "AB1234" in html
    for key in ('accesskey="a"', 'accesskey="e"', 'accesskey="r"', 'accesskey="c"'):
        assert key in html


def test_rejecting_in_the_admin_needs_a_reason(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    client.post(_decide_url(request), {"verdict": "reject", "note": ""})
    request.refresh_from_db()
    assert request.status == "pending"
    response = client.post(_decide_url(request), {"verdict": "reject", "note": "duplicate"})
    assert response.status_code == 302 and response["Location"].endswith(QUEUE)
    request.refresh_from_db()
    assert (request.status, request.decision_note) == ("rejected", "duplicate")


def test_a_reviewer_claims_then_approves_an_edited_action_in_the_admin(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    client = signed_in(acme_client, acme, RITA)
    client.post(_decide_url(request), {"verdict": "claim"})
    request.refresh_from_db()
    assert (request.status, request.assignee.username if request.assignee else None) == ("assigned", RITA)
    assert [r.pk for r in client.get(QUEUE).context["page"]] == [request.pk]
    edited = {**REFUND_ARGUMENTS, "amount": 10.0}
    client.post(
        _decide_url(request),
        {"verdict": "edit", "action_hash": request.action_hash, "arguments": json.dumps(edited)},
    )
    request.refresh_from_db()
    assert (request.status, request.arguments, request.original_arguments) == ("edited", edited, REFUND_ARGUMENTS)
    assert list(client.get(QUEUE).context["page"]) == []


def test_a_scoped_reviewer_gets_404_for_another_agents_request(acme: Tenant, acme_client: Client) -> None:
    scoped = staff(acme, "scoped@acme.example", "reviewer")
    mine, other = refund_agent(acme, "refunds-eu"), refund_agent(acme, "refunds-us")
    review_scope(acme, scoped, mine)
    hidden = refund_waiting(acme, other)
    client = signed_in(acme_client, acme, scoped.username)
    assert client.get(_decide_url(hidden)).status_code == 404
    assert [r.pk for r in client.get(TEAM).context["page"]] == []


def test_a_viewer_reads_the_decision_page_without_the_form(acme: Tenant, acme_client: Client) -> None:
    request = refund_waiting(acme, refund_agent(acme))
    staff(acme, "vic@acme.example", "viewer")
    page = signed_in(acme_client, acme, "vic@acme.example").get(_decide_url(request))
    assert page.status_code == 403 and 'id="decision-form"' not in page.content.decode()
    assert request.evidence_hash in page.content.decode()
