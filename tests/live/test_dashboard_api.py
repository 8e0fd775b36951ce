"""GET /api/v1/governance/dashboard/ and the admin index that shows the same figures."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from agents.models import Agent, Task
from config.connection import connection
from governance.roles import user_agent_scope_set
from tenants.models import Tenant
from tenants.selectors import tenant_limits
from tests.agents.api_support import agent_make, member_add, signed_in, task_make
from tests.conftest import ALICE


def test_the_dashboard_counts_tasks_by_state_and_in_flight(acme: Tenant, acme_client: Client) -> None:
    agent = agent_make(acme, "dash-counts")
    task_make(acme, agent), task_make(acme, agent)
    response = signed_in(acme_client, acme, ALICE).get("/api/v1/governance/dashboard/")
    assert response.status_code == 200
    body = response.json()
    assert body["tasks_by_state"].get("assigned", 0) >= 2
    assert body["in_flight"] == sum(
        body["tasks_by_state"].get(state, 0) for state in ("assigned", "acked", "in_progress", "retrying")
    )
    assert set(body) >= {"seq", "pending_approvals", "sla_breaches", "approvals", "error_rates", "audit"}
    assert body["audit"][0]["seq"] > body["audit"][-1]["seq"]


def test_a_reviewer_scoped_to_one_agent_sees_only_its_tasks_on_the_dashboard(acme: Tenant, acme_client: Client) -> None:
    mine, other = agent_make(acme, "dash-mine"), agent_make(acme, "dash-other")
    task_make(acme, other)
    connection.set_tenant(acme)
    before = User.objects.get(username=ALICE)
    reviewer = member_add(acme, "dana@acme.example", "reviewer")
    with transaction.atomic():
        user_agent_scope_set(user=reviewer, grant="review_agent", agent_ids=[mine.pk], actor=before)
    body = signed_in(acme_client, acme, reviewer.username).get("/api/v1/governance/dashboard/").json()
    assert body["tasks_by_state"] == {}
    task_make(acme, mine)
    body = signed_in(acme_client, acme, reviewer.username).get("/api/v1/governance/dashboard/").json()
    assert body["tasks_by_state"] == {"assigned": 1}


def test_the_tenant_admin_index_shows_the_dashboard_and_the_operators_index_does_not(
    acme: Tenant, acme_client: Client, public_client: Client
) -> None:
    agent_make(acme, "dash-index")
    page = signed_in(acme_client, acme, ALICE).get("/admin/")
    assert page.status_code == 200
    assert b'data-live="dashboard"' in page.content and b"runs in flight" in page.content
    assert b"governance/live.js" in page.content
    connection.set_schema_to_public()
    public_client.force_login(User.objects.get(username="otto@vigil.example"))
    operators = public_client.get("/admin/")
    assert operators.status_code == 200 and b'data-live="dashboard"' not in operators.content


def test_the_dashboard_shows_the_tenants_limits_and_what_is_used_of_them(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    agent = agent_make(acme, "dash-usage")
    task_make(acme, agent)
    agents, runs = Agent.objects.count(), Task.objects.filter(created_at__date=timezone.now().date()).count()
    body = signed_in(acme_client, acme, ALICE).get("/api/v1/governance/dashboard/").json()
    usage = {line["limit"]: line for line in body["usage"]}
    limits = tenant_limits(tenant=acme).as_dict()
    assert {name: line["max"] for name, line in usage.items()} == limits
    assert (usage["max_agents"]["used"], usage["runs_per_day"]["used"]) == (agents, runs)
    assert usage["max_pending_approvals"]["used"] == body["pending_approvals"]
    # A rate is not a count the dashboard keeps: the limit stands alone.
    assert usage["requests_per_minute"]["used"] is None


def test_a_limit_nearly_used_up_is_marked_near(acme: Tenant, acme_client: Client) -> None:
    connection.set_tenant(acme)
    agent_make(acme, "dash-near")
    acme.limit_overrides = {**(acme.limit_overrides or {}), "max_agents": Agent.objects.count()}
    acme.save(update_fields=["limit_overrides"])
    body = signed_in(acme_client, acme, ALICE).get("/api/v1/governance/dashboard/").json()
    (agents,) = [line for line in body["usage"] if line["limit"] == "max_agents"]
    assert agents["near"] is True and agents["used"] == agents["max"]
    page = signed_in(acme_client, acme, ALICE).get("/admin/")
    assert b'data-limit="max_agents" class="vigil-near"' in page.content
