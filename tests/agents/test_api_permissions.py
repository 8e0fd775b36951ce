"""Who may do what through the API: viewer reads; reviewer reads and decides; agent_manager
reads, writes and runs; admin does everything; nobody anonymous."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.models import Agent, AgentConfigVersion, Task
from config.connection import connection
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET, MAX, REFUND_TICKET, RITA, VERA

from .api_support import agent_make, approval_opened, member_add, signed_in, task_make, token_for

NEW_AGENT = {"name": "front-desk", "blueprint": "triage"}


@pytest.fixture
def vera(acme: Tenant, acme_client: Client) -> Client:
    member_add(acme, VERA, "viewer")
    return signed_in(acme_client, acme, VERA)


@pytest.fixture
def max_token(acme: Tenant, acme_client: Client) -> str:
    """Max is an agent_manager who uses the API with a token (no session)."""
    member_add(acme, MAX, "agent_manager")
    return token_for(acme_client, MAX)


@pytest.fixture
def rita(acme: Tenant, acme_client: Client) -> Client:
    return signed_in(acme_client, acme, RITA)


def _refused(response: Any) -> None:
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "detail": "your role does not allow this", "extra": {}}


def test_a_viewer_can_list_and_read_agents_tasks_and_approvals(acme: Tenant, vera: Client) -> None:
    agent = agent_make(acme, "front-desk")
    task = task_make(acme, agent)
    for path in (
        "/api/v1/agents/",
        "/api/v1/agents/front-desk/",
        f"/api/v1/agents/{agent.pk}/versions/",
        "/api/v1/tasks/",
        f"/api/v1/tasks/{task.pk}/",
        f"/api/v1/tasks/{task.pk}/events/",
        "/api/v1/events/",
        "/api/v1/hitl/",
        "/api/v1/hitl/pending/",
        "/api/v1/tools/",
        "/api/v1/agents/blueprints/",
    ):
        assert vera.get(path).status_code == 200, path
    assert vera.get(f"/api/v1/tasks/{task.pk}/").json()["state"] == "assigned"


def test_a_viewer_cannot_create_an_agent(vera: Client) -> None:
    _refused(vera.post("/api/v1/agents/", NEW_AGENT, content_type="application/json"))
    assert not Agent.objects.exists() and not AgentConfigVersion.objects.exists()


def test_a_viewer_cannot_change_an_agents_config(acme: Tenant, vera: Client) -> None:
    agent = agent_make(acme, "front-desk")
    _refused(
        vera.patch("/api/v1/agents/front-desk/", {"config": {"auto_reply": False}}, content_type="application/json")
    )
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (1, {})


def test_a_viewer_cannot_execute_an_agent(acme: Tenant, vera: Client) -> None:
    agent_make(acme, "front-desk")
    _refused(
        vera.post("/api/v1/agents/front-desk/execute/", {"input": BILLING_TICKET}, content_type="application/json")
    )
    assert not Task.objects.exists()


def test_a_viewer_cannot_cancel_a_task(acme: Tenant, vera: Client) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    _refused(vera.post(f"/api/v1/tasks/{task.pk}/cancel/"))
    task.refresh_from_db()
    assert (task.state, task.attempt) == ("assigned", 1)


def test_a_viewer_cannot_approve(acme: Tenant, vera: Client) -> None:
    approval = approval_opened(
        acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    _refused(vera.post(f"/api/v1/hitl/{approval.pk}/approve/"))
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("pending", None)
    assert approval.task.state == "awaiting_approval"


def test_a_reviewer_cannot_create_an_agent(rita: Client) -> None:
    _refused(rita.post("/api/v1/agents/", NEW_AGENT, content_type="application/json"))
    assert not Agent.objects.exists()


def test_a_reviewer_cannot_execute_an_agent(acme: Tenant, rita: Client) -> None:
    agent_make(acme, "front-desk")
    _refused(
        rita.post("/api/v1/agents/front-desk/execute/", {"input": BILLING_TICKET}, content_type="application/json")
    )
    assert not Task.objects.exists()


def test_a_reviewer_can_reject_a_pending_approval(acme: Tenant, rita: Client) -> None:
    approval = approval_opened(
        acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    response = rita.post(
        f"/api/v1/hitl/{approval.pk}/reject/", {"note": "no proof of damage"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["decided_by"]) == ("rejected", RITA)
    approval.refresh_from_db()
    assert approval.decided_by is not None
    assert (approval.status, approval.decided_by.username, approval.decision_note) == (
        "rejected",
        RITA,
        "no proof of damage",
    )
    assert approval.task.state == "in_progress"


def test_an_agent_manager_creates_an_agent_with_a_token(acme_client: Client, max_token: str) -> None:
    response = acme_client.post(
        "/api/v1/agents/", NEW_AGENT, content_type="application/json", HTTP_AUTHORIZATION=f"Token {max_token}"
    )
    assert response.status_code == 201
    version = AgentConfigVersion.objects.get(agent__name="front-desk")
    assert version.author is not None
    assert (version.version, version.author.username) == (1, MAX)


def test_an_agent_manager_runs_an_agent(acme: Tenant, acme_client: Client, max_token: str) -> None:
    agent = agent_make(acme, "front-desk")
    response = acme_client.post(
        "/api/v1/agents/front-desk/execute/",
        {"input": BILLING_TICKET},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {max_token}",
    )
    assert response.status_code == 202
    task = Task.objects.get(agent=agent)
    assert task.created_by is not None
    assert (task.pk, task.created_by.username, task.state) == (response.json()["id"], MAX, "assigned")


def test_an_agent_manager_cannot_approve(acme: Tenant, acme_client: Client, max_token: str) -> None:
    approval = approval_opened(
        acme, name="refunds", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
    )
    _refused(acme_client.post(f"/api/v1/hitl/{approval.pk}/approve/", HTTP_AUTHORIZATION=f"Token {max_token}"))
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_an_agent_manager_cannot_escalate_or_override_a_task(acme: Tenant, acme_client: Client, max_token: str) -> None:
    task = task_make(acme, agent_make(acme, "front-desk"))
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Token {max_token}"}
    _refused(acme_client.post(f"/api/v1/tasks/{task.pk}/escalate/", **auth))
    _refused(
        acme_client.post(f"/api/v1/tasks/{task.pk}/override/", {"output": {}}, content_type="application/json", **auth)
    )
    task.refresh_from_db()
    assert (task.state, task.output) == ("assigned", None)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/agents/"),
        ("get", "/api/v1/tasks/"),
        ("get", "/api/v1/hitl/pending/"),
        ("get", "/api/v1/agents/blueprints/"),
        ("post", "/api/v1/agents/"),
    ],
)
def test_an_anonymous_request_is_refused_with_401(acme_client: Client, method: str, path: str) -> None:
    response = getattr(acme_client, method)(path)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")


def test_an_anonymous_request_cannot_create_an_agent(acme: Tenant, acme_client: Client) -> None:
    response = acme_client.post("/api/v1/agents/", NEW_AGENT, content_type="application/json")
    assert response.status_code == 401
    connection.set_tenant(acme)
    assert not Agent.objects.exists()


def test_a_made_up_token_is_refused_with_401(acme: Tenant, acme_client: Client) -> None:
    response = acme_client.get("/api/v1/agents/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_a_token_is_not_issued_for_a_wrong_password(acme_client: Client) -> None:
    response = acme_client.post(
        "/api/v1/auth/token/", {"username": ALICE, "password": "guess-123456"}, content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert "token" not in response.json()


def test_a_deactivated_users_session_no_longer_works(acme: Tenant, acme_client: Client) -> None:
    user = member_add(acme, VERA, "viewer")
    client = signed_in(acme_client, acme, VERA)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/api/v1/agents/").status_code == 401
