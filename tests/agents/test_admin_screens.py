"""The tenant admin's agent, task, outbox and approval screens, driven as a reviewer or
admin would: through the admin's own URLs, with the stored state checked after each."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.engine import advance
from agents.models import Agent, AgentConfigVersion, Task
from agents.services import agent_create, agent_update, task_submit
from governance.models import AuditEvent
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
NO_INLINE_FORMS = {"versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"}


@pytest.fixture
def alice(in_acme: Tenant, acme_client: Client) -> Client:
    assert acme_client.login(username="alice@acme.example", password=PASSWORD)
    return acme_client


def _run_until(task: Task, state: str) -> Task:
    for _ in range(10):
        task.refresh_from_db()
        if task.state == state:
            return task
        advance(task_id=task.pk, attempt=task.attempt)
    raise AssertionError(f"task stayed {task.state}")


def test_admin_shows_config_validation_errors_on_the_agent_form_and_saves_nothing(
    alice: Client, in_acme: Tenant
) -> None:
    response = alice.post(
        "/admin/agents/agent/add/",
        {
            "name": "bad-config",
            "blueprint": "triage",
            "config": '{"confidence_threshold": "high"}',
            "model_settings": '{"provider": "offline"}',
            "privilege_ceiling": 2,
            "automation_level": "semi_auto",
            **NO_INLINE_FORMS,
        },
    )
    assert response.status_code == 200
    assert "config.confidence_threshold" in response.content.decode()
    assert not Agent.objects.filter(name="bad-config").exists()


def test_admin_creates_an_agent_through_the_service_with_version_one(alice: Client, in_acme: Tenant) -> None:
    response = alice.post(
        "/admin/agents/agent/add/",
        {
            "name": "admin-made",
            "blueprint": "triage",
            "config": '{"confidence_threshold": 0.7}',
            "model_settings": '{"provider": "offline"}',
            "privilege_ceiling": 2,
            "automation_level": "semi_auto",
            "reason": "first",
            **NO_INLINE_FORMS,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    agent = Agent.objects.get(name="admin-made")
    assert agent.version == 1
    assert AgentConfigVersion.objects.filter(agent=agent, version=1).exists()
    assert set(agent.tools.values_list("name", flat=True)) == {"send_reply", "escalate_to_human"}


def test_admin_change_makes_a_new_version_and_rollback_restores_the_old_config(alice: Client, in_acme: Tenant) -> None:
    agent = agent_create(name="versioned", blueprint="triage", config={"confidence_threshold": 0.5})
    page = alice.get(f"/admin/agents/agent/{agent.pk}/change/")
    assert page.status_code == 200
    response = alice.post(
        f"/admin/agents/agent/{agent.pk}/change/",
        {
            "description": "",
            "config": '{"confidence_threshold": 0.9}',
            "model_settings": '{"provider": "offline"}',
            "privilege_ceiling": 2,
            "automation_level": "semi_auto",
            "tools": list(agent.tools.values_list("pk", flat=True)),
            "reason": "stricter",
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
            "versions-0-id": agent.versions.get().pk,
            "versions-0-agent": agent.pk,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (2, {"confidence_threshold": 0.9})
    assert alice.get(f"/admin/agents/agent/{agent.pk}/rollback/1/").status_code == 200
    assert alice.post(f"/admin/agents/agent/{agent.pk}/rollback/1/").status_code == 302
    agent.refresh_from_db()
    assert (agent.version, agent.config) == (3, {"confidence_threshold": 0.5})
    assert agent.versions.get(version=3).reason == "rollback to v1"


def test_admin_run_view_queues_a_task_and_the_task_page_shows_its_steps(alice: Client, in_acme: Tenant) -> None:
    agent = agent_create(name="runner", blueprint="triage")
    assert alice.get(f"/admin/agents/agent/{agent.pk}/run/").status_code == 200
    response = alice.post(
        f"/admin/agents/agent/{agent.pk}/run/",
        {"input": '{"text": "The app crashes with error 500 when I upload"}', "priority": 3},
    )
    task = Task.objects.get(agent=agent)
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/agents/task/{task.pk}/change/")
    assert task.priority == 3 and task.state == "assigned"
    _run_until(task, "verified")
    page = alice.get(f"/admin/agents/task/{task.pk}/change/").content.decode()
    assert "classify" in page and "send_reply" in page and "verified" in page


def test_admin_run_view_names_invalid_json_and_creates_no_task(alice: Client, in_acme: Tenant) -> None:
    agent = agent_create(name="runner2", blueprint="triage")
    response = alice.post(f"/admin/agents/agent/{agent.pk}/run/", {"input": "{not json", "priority": 2})
    assert response.status_code == 200
    assert "not valid JSON" in response.content.decode()
    assert not Task.objects.filter(agent=agent).exists()


def test_admin_approves_a_refund_and_the_task_resumes_at_that_action(alice: Client, in_acme: Tenant) -> None:
    agent = agent_create(name="refunder", blueprint="resolution", privilege_ceiling=3)
    task = task_submit(agent_name=agent.name, input={"text": "Please refund 25 EUR for order #AB1234, it broke"})
    _run_until(task, "awaiting_approval")
    approval = ApprovalRequest.objects.get(task=task)
    page = alice.get(f"/admin/hitl/approvalrequest/{approval.pk}/change/").content.decode()
    assert f"/admin/hitl/approvalrequest/{approval.pk}/decide/" in page and approval.action_hash in page
    decide = alice.get(f"/admin/hitl/approvalrequest/{approval.pk}/decide/").content.decode()
    assert "Approve exactly this action" in decide and "AB1234" in decide
    response = alice.post(
        f"/admin/hitl/approvalrequest/{approval.pk}/decide/",
        {"verdict": "approve", "action_hash": approval.action_hash, "note": "ok"},
    )
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.decided_by is not None
    assert approval.status == "approved" and approval.decided_by.username == "alice@acme.example"
    done = _run_until(task, "verified")
    assert [s.action for s in done.steps.order_by("index")] == ["classify", "draft", "issue_refund", "send_reply"]
    outbox = alice.get("/admin/agents/outboxmessage/").content.decode()
    assert "refund" in outbox and f"approval:{approval.pk}" in outbox


def test_viewer_cannot_run_agents_from_the_admin(in_acme: Tenant, acme_client: Client) -> None:
    from django.contrib.auth.models import Group, User

    viewer = User.objects.create_user("val@acme.example", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    agent = agent_create(name="guarded", blueprint="triage")
    assert acme_client.login(username="val@acme.example", password=PASSWORD)
    assert acme_client.get(f"/admin/agents/agent/{agent.pk}/run/").status_code == 403
    run = acme_client.post(f"/admin/agents/agent/{agent.pk}/run/", {"input": '{"text": "hi there"}'})
    assert run.status_code == 403
    assert not Task.objects.filter(agent=agent).exists()


def test_only_a_reviewer_or_admin_reaches_the_decision_page_and_a_viewer_cannot_decide(
    in_acme: Tenant, acme_client: Client
) -> None:
    from django.contrib.auth.models import Group, User

    viewer = User.objects.create_user("vic@acme.example", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    agent = agent_create(name="gated", blueprint="resolution", privilege_ceiling=3)
    task = task_submit(agent_name=agent.name, input={"text": "Please refund 25 EUR for order #AB1234, it broke"})
    _run_until(task, "awaiting_approval")
    approval = ApprovalRequest.objects.get(task=task)
    assert acme_client.login(username="vic@acme.example", password=PASSWORD)
    assert acme_client.get(f"/admin/hitl/approvalrequest/{approval.pk}/decide/").status_code == 403
    acme_client.post(
        f"/admin/hitl/approvalrequest/{approval.pk}/decide/",
        {"verdict": "approve", "action_hash": approval.action_hash},
    )
    approval.refresh_from_db()
    assert approval.status == "pending" and approval.decided_by is None
    assert acme_client.login(username="rita@acme.example", password=PASSWORD)
    assert acme_client.get(f"/admin/hitl/approvalrequest/{approval.pk}/decide/").status_code == 200


def _refund_waiting(name: str, *, requester: User | None = None) -> ApprovalRequest:
    agent = agent_create(name=name, blueprint="resolution", privilege_ceiling=3)
    task = task_submit(
        agent_name=agent.name, input={"text": "Please refund 25 EUR for order #AB1234, it broke"}, user=requester
    )
    _run_until(task, "awaiting_approval")
    return ApprovalRequest.objects.get(task=task)


def _undecided(approval: ApprovalRequest) -> None:
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("pending", None)
    assert not AuditEvent.objects.filter(
        target_type="approval", target_id=str(approval.pk), verb__in=["approval.approved", "approval.rejected"]
    ).exists()


def test_the_admin_who_ran_a_task_is_refused_its_decision_page_with_the_rule_named(
    alice: Client, in_acme: Tenant
) -> None:
    approval = _refund_waiting("self-refunder", requester=User.objects.get(username="alice@acme.example"))
    decide = f"/admin/hitl/approvalrequest/{approval.pk}/decide/"
    assert decide not in alice.get(f"/admin/hitl/approvalrequest/{approval.pk}/change/").content.decode()
    response = alice.get(decide)
    assert response.status_code == 403
    page = response.content.decode()
    assert "you requested this task" in page and "(rule: requester)" in page and 'id="decision-form"' not in page
    posted = alice.post(decide, {"verdict": "approve", "action_hash": approval.action_hash})
    assert posted.status_code == 403 and "(rule: requester)" in posted.content.decode()
    _undecided(approval)


def test_the_latest_config_author_is_refused_the_decision_page_and_another_reviewer_decides(
    alice: Client, in_acme: Tenant, acme_client: Client
) -> None:
    approval = _refund_waiting("tuned-refunder")
    agent_update(
        agent_id=approval.task.agent_id, user=User.objects.get(username="alice@acme.example"), config={"max_refund": 30}
    )
    decide = f"/admin/hitl/approvalrequest/{approval.pk}/decide/"
    response = alice.get(decide)
    assert response.status_code == 403 and "(rule: config_author)" in response.content.decode()
    _undecided(approval)
    rita = Client(HTTP_HOST="acme.localhost")
    assert rita.login(username="rita@acme.example", password=PASSWORD)
    assert rita.post(decide, {"verdict": "approve", "action_hash": approval.action_hash}).status_code == 302
    approval.refresh_from_db()
    assert approval.decided_by is not None
    assert (approval.status, approval.decided_by.username) == ("approved", "rita@acme.example")


def test_approving_in_the_admin_without_the_action_hash_decides_nothing(alice: Client, in_acme: Tenant) -> None:
    approval = _refund_waiting("hashless-refunder")
    response = alice.post(f"/admin/hitl/approvalrequest/{approval.pk}/decide/", {"verdict": "approve"}, follow=True)
    assert "approving needs the action_hash" in response.content.decode()
    _undecided(approval)
