"""Agent scopes (guardian object permissions on agents): a user without grants reaches every
agent their roles allow; a user with grants reaches only those agents, in the API and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client
from guardian.models import UserObjectPermission

from agents.models import Agent, Task
from config.connection import connection
from governance.models import AuditEvent
from governance.roles import user_agent_scope_set
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.agents.api_support import approval_opened, member_add, signed_in
from tests.conftest import ALICE, MAX, REFUND_TICKET, RITA, VERA

from .conftest import member_change_form

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse


@dataclass
class Two:
    """Two refund agents of acme, each with a task waiting for a reviewer."""

    mine: ApprovalRequest
    other: ApprovalRequest

    @property
    def mine_agent(self) -> Agent:
        return self.mine.task.agent

    @property
    def other_agent(self) -> Agent:
        return self.other.task.agent


@pytest.fixture
def two(acme: Tenant) -> Two:
    return Two(
        mine=approval_opened(
            acme, name="refunds-eu", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
        ),
        other=approval_opened(
            acme, name="refunds-us", blueprint="resolution", task_input=REFUND_TICKET, privilege_ceiling=3
        ),
    )


def _grant(tenant: Tenant, username: str, grant: str, *agents: Agent) -> None:
    connection.set_tenant(tenant)
    user_agent_scope_set(
        user=User.objects.get(username=username),
        grant=grant,
        agent_ids=[a.pk for a in agents],
        actor=User.objects.get(username=ALICE),
    )


def _ids(client: Client, path: str) -> list[int]:
    response = client.get(path)
    assert response.status_code == 200, (path, response.content)
    return sorted(row["id"] for row in response.json()["results"])


def _approve(client: Client, approval: ApprovalRequest) -> _MonkeyPatchedWSGIResponse:
    return client.post(
        f"/api/v1/hitl/{approval.pk}/approve/", {"action_hash": approval.action_hash}, content_type="application/json"
    )


def test_a_reviewer_without_grants_sees_every_agents_approvals_and_tasks(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    rita = signed_in(acme_client, acme, RITA)
    assert _ids(rita, "/api/v1/hitl/pending/") == sorted([two.mine.pk, two.other.pk])
    assert _ids(rita, "/api/v1/tasks/") == sorted([two.mine.task_id, two.other.task_id])


def test_a_reviewer_scoped_to_one_agent_lists_only_its_approvals_tasks_and_events(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    _grant(acme, RITA, "review_agent", two.mine_agent)
    rita = signed_in(acme_client, acme, RITA)
    assert _ids(rita, "/api/v1/hitl/") == _ids(rita, "/api/v1/hitl/pending/") == [two.mine.pk]
    assert _ids(rita, "/api/v1/tasks/") == [two.mine.task_id]
    assert _ids(rita, "/api/v1/agents/") == [two.mine_agent.pk]
    assert {row["task"] for row in rita.get("/api/v1/events/").json()["results"]} == {two.mine.task_id}
    for path in (
        f"/api/v1/hitl/{two.other.pk}/",
        f"/api/v1/tasks/{two.other.task_id}/",
        f"/api/v1/tasks/{two.other.task_id}/events/",
        f"/api/v1/agents/{two.other_agent.name}/",
        f"/api/v1/agents/{two.other_agent.pk}/versions/",
    ):
        assert rita.get(path).status_code == 404, path


def test_a_scoped_reviewer_decides_her_agents_request_and_not_another_agents(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    _grant(acme, RITA, "review_agent", two.mine_agent)
    rita = signed_in(acme_client, acme, RITA)
    refused = _approve(rita, two.other)
    assert refused.status_code == 404 and refused.json()["code"] == "approval_not_found"
    assert _approve(rita, two.mine).status_code == 200
    connection.set_tenant(acme)
    assert ApprovalRequest.objects.get(pk=two.other.pk).status == "pending"
    decided_by = ApprovalRequest.objects.get(pk=two.mine.pk).decided_by
    assert decided_by is not None and decided_by.username == RITA
    assert Task.objects.get(pk=two.other.task_id).state == "awaiting_approval"


def test_seeing_an_agent_does_not_let_a_scoped_reviewer_review_it(acme: Tenant, two: Two, acme_client: Client) -> None:
    _grant(acme, RITA, "review_agent", two.mine_agent)
    _grant(acme, RITA, "view_agent", two.other_agent)
    rita = signed_in(acme_client, acme, RITA)
    assert _ids(rita, "/api/v1/hitl/pending/") == sorted([two.mine.pk, two.other.pk])
    response = _approve(rita, two.other)
    assert response.status_code == 403
    assert response.json()["extra"] == {"rule": "agent_scope", "agent": "refunds-us"}
    connection.set_tenant(acme)
    assert ApprovalRequest.objects.get(pk=two.other.pk).status == "pending"


def test_a_grant_never_widens_a_role(acme: Tenant, two: Two, acme_client: Client) -> None:
    member_add(acme, VERA, "viewer")
    _grant(acme, VERA, "manage_agent", two.mine_agent)
    _grant(acme, VERA, "review_agent", two.mine_agent)
    vera = signed_in(acme_client, acme, VERA)
    assert vera.post(f"/api/v1/agents/{two.mine_agent.pk}/pause/").status_code == 403
    assert _approve(vera, two.mine).status_code == 403
    connection.set_tenant(acme)
    assert Agent.objects.get(pk=two.mine_agent.pk).status == "enabled"
    assert ApprovalRequest.objects.get(pk=two.mine.pk).status == "pending"


def test_an_agent_manager_scoped_to_one_agent_manages_only_that_one(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    member_add(acme, MAX, "agent_manager")
    _grant(acme, MAX, "manage_agent", two.mine_agent)
    _grant(acme, MAX, "view_agent", two.other_agent)
    max_ = signed_in(acme_client, acme, MAX)
    assert max_.post(f"/api/v1/agents/{two.mine_agent.pk}/pause/").status_code == 200
    assert max_.post(f"/api/v1/agents/{two.other_agent.pk}/pause/").status_code == 403
    assert max_.post(f"/api/v1/tasks/{two.other.task_id}/cancel/").status_code == 403
    connection.set_tenant(acme)
    assert [a.status for a in (Agent.objects.get(pk=two.mine_agent.pk), Agent.objects.get(pk=two.other_agent.pk))] == [
        "paused",
        "enabled",
    ]
    assert Task.objects.get(pk=two.other.task_id).state == "awaiting_approval"


def test_an_agent_manager_scoped_to_some_agents_manages_the_agents_she_creates(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    member_add(acme, MAX, "agent_manager")
    _grant(acme, MAX, "manage_agent", two.mine_agent)
    max_ = signed_in(acme_client, acme, MAX)

    created = max_.post(
        "/api/v1/agents/", {"name": "max-triage", "blueprint": "triage"}, content_type="application/json"
    )

    assert created.status_code == 201, created.content
    agent_id = created.json()["id"]
    assert max_.get(f"/api/v1/agents/{agent_id}/").status_code == 200
    assert max_.post(f"/api/v1/agents/{agent_id}/pause/").status_code == 200
    assert max_.get(f"/api/v1/agents/{two.other_agent.pk}/").status_code == 404
    connection.set_tenant(acme)
    changed = AuditEvent.objects.filter(verb="user.agent_scope_changed").latest("seq")
    assert changed.data["to"] == sorted([two.mine_agent.pk, agent_id])


def test_the_admin_shows_a_scoped_reviewer_only_her_agents_requests(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    _grant(acme, RITA, "review_agent", two.mine_agent)
    rita = signed_in(acme_client, acme, RITA)
    listing = rita.get("/admin/hitl/approvalrequest/").content.decode()
    assert f"/admin/hitl/approvalrequest/{two.mine.pk}/change/" in listing
    assert f"/admin/hitl/approvalrequest/{two.other.pk}/change/" not in listing
    assert rita.get(f"/admin/hitl/approvalrequest/{two.other.pk}/change/").status_code == 302  # "does not exist"
    assert rita.get(f"/admin/hitl/approvalrequest/{two.other.pk}/decide/").status_code == 404
    rita.post(
        f"/admin/hitl/approvalrequest/{two.other.pk}/decide/",
        {"verdict": "approve", "action_hash": two.other.action_hash},
    )
    assert rita.get(f"/admin/hitl/approvalrequest/{two.mine.pk}/decide/").status_code == 200
    tasks = rita.get("/admin/agents/task/").content.decode()
    assert f"/admin/agents/task/{two.mine.task_id}/change/" in tasks
    assert f"/admin/agents/task/{two.other.task_id}/change/" not in tasks
    connection.set_tenant(acme)
    assert ApprovalRequest.objects.get(pk=two.other.pk).status == "pending"


def test_a_tenant_admin_limits_a_reviewer_to_some_agents_in_the_user_form(
    acme: Tenant, two: Two, acme_client: Client
) -> None:
    alice = signed_in(acme_client, acme, ALICE)
    rita = User.objects.get(username=RITA)
    response = alice.post(
        f"/admin/auth/user/{rita.pk}/change/", member_change_form(rita, review_agents=[two.mine_agent.pk])
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.set_tenant(acme)
    assert list(UserObjectPermission.objects.filter(user=rita).values_list("permission__codename", "object_pk")) == [
        ("review_agent", str(two.mine_agent.pk))
    ]
    event = AuditEvent.objects.get(verb="user.agent_scope_changed", target_id=str(rita.pk))
    assert (event.actor_label, event.data["grant"], event.data["from"], event.data["to"]) == (
        ALICE,
        "review_agent",
        [],
        [two.mine_agent.pk],
    )
    assert _ids(signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA), "/api/v1/hitl/pending/") == [two.mine.pk]
