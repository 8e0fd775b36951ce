"""Tenants never see each other through the API: acme's agents, tasks and approvals do not
exist on beta's domain, and acme's credentials do not open beta."""

from __future__ import annotations

import pytest
from django.test import Client

from agents.models import Agent, Task
from config.connection import connection
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET, BOB, PASSWORD, REFUND_TICKET

from .api_support import agent_make, approval_opened, signed_in, task_make, token_for


@pytest.fixture
def bob(beta: Tenant, beta_client: Client) -> Client:
    return signed_in(beta_client, beta, BOB)


@pytest.fixture
def refund(acme: Tenant) -> ApprovalRequest:
    return approval_opened(acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3)


def _absent_in(tenant: Tenant, model: type[Agent] | type[Task] | type[ApprovalRequest], pk: int) -> bool:
    connection.set_tenant(tenant)
    return not model.objects.filter(pk=pk).exists()


def test_an_acme_agent_is_404_on_beta_by_id_and_by_name(acme: Tenant, beta: Tenant, bob: Client) -> None:
    agent = agent_make(acme, "front-desk")
    assert bob.get(f"/api/v1/agents/{agent.pk}/").status_code == 404
    assert bob.get("/api/v1/agents/front-desk/").status_code == 404
    assert _absent_in(beta, Agent, agent.pk)


def test_betas_agent_list_does_not_show_acmes_agents(acme: Tenant, beta: Tenant, bob: Client) -> None:
    agent_make(acme, "front-desk")
    agent_make(beta, "beta-desk")
    response = bob.get("/api/v1/agents/")
    assert [a["name"] for a in response.json()["results"]] == ["beta-desk"]


def test_bob_cannot_change_or_run_an_acme_agent_from_beta(acme: Tenant, beta: Tenant, bob: Client) -> None:
    agent = agent_make(acme, "front-desk")
    patched = bob.patch(
        "/api/v1/agents/front-desk/", {"config": {"auto_reply": False}}, content_type="application/json"
    )
    executed = bob.post(
        "/api/v1/agents/front-desk/execute/", {"input": BILLING_TICKET}, content_type="application/json"
    )
    assert patched.status_code == executed.status_code == 404
    assert _absent_in(beta, Agent, agent.pk) and not Task.objects.exists()
    connection.set_tenant(acme)
    agent.refresh_from_db()
    assert (agent.version, agent.config, agent.tasks.count()) == (1, {}, 0)


def test_an_acme_task_is_404_on_beta_and_not_in_betas_list(acme: Tenant, beta: Tenant, bob: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    assert bob.get(f"/api/v1/tasks/{task.pk}/").status_code == 404
    assert bob.post(f"/api/v1/tasks/{task.pk}/cancel/").status_code == 404
    assert bob.get("/api/v1/tasks/").json()["count"] == 0
    assert _absent_in(beta, Task, task.pk)
    connection.set_tenant(acme)
    task.refresh_from_db()
    assert task.state == "assigned"


def test_an_acme_approval_is_404_on_beta_and_bob_cannot_decide_it(
    acme: Tenant, beta: Tenant, bob: Client, refund: ApprovalRequest
) -> None:
    assert bob.get(f"/api/v1/hitl/{refund.pk}/").status_code == 404
    decided = bob.post(f"/api/v1/hitl/{refund.pk}/approve/", {}, content_type="application/json")
    assert decided.status_code == 404 and decided.json()["code"] == "approval_not_found"
    assert bob.get("/api/v1/hitl/pending/").json()["count"] == 0
    assert _absent_in(beta, ApprovalRequest, refund.pk)
    connection.set_tenant(acme)
    refund.refresh_from_db()
    assert (refund.status, refund.decided_by) == ("pending", None)


def test_a_token_issued_on_acme_is_rejected_on_beta_with_401(
    acme: Tenant, beta: Tenant, acme_client: Client, beta_client: Client
) -> None:
    token = token_for(acme_client, ALICE)
    assert acme_client.get("/api/v1/agents/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    response = beta_client.get("/api/v1/agents/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_alices_password_gets_no_token_on_beta(beta: Tenant, beta_client: Client) -> None:
    response = beta_client.post(
        "/api/v1/auth/token/", {"username": ALICE, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 401
    assert "token" not in response.json()


def test_alices_acme_session_does_not_open_beta(acme: Tenant, acme_client: Client) -> None:
    client = signed_in(acme_client, acme, ALICE)
    assert client.get("/api/v1/agents/").status_code == 200
    response = client.get("/api/v1/agents/", HTTP_HOST="beta.localhost")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
