"""The cast and helpers shared by the API tests (tests/agents/test_api_*.py); no tests here.

Requests go through django.test.Client on a tenant's host; the tenant middleware switches the
connection's schema on every request, so helpers that read or write rows set the schema
they need first.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.test import Client

from agents.engine import advance
from agents.models import Agent, Task
from agents.services import agent_create, task_submit
from config.connection import connection
from governance.models import AuditEvent
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import BILLING_TICKET, PASSWORD


def member_add(tenant: Tenant, username: str, role: str) -> User:
    """A new user of ``tenant`` holding one role (a group of the tenant's schema)."""
    connection.set_tenant(tenant)
    user = User.objects.create_user(username, username, PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    return user


def signed_in(client: Client, tenant: Tenant, username: str) -> Client:
    """Log ``client`` in with the password; the session lives in the tenant's schema."""
    connection.set_tenant(tenant)
    assert client.login(username=username, password=PASSWORD)
    return client


def token_for(client: Client, username: str) -> str:
    """A new API token of ``username`` (governance.tokens), issued for the password on the
    client's host; send it as ``Bearer`` or ``Token``."""
    response = client.post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, "application/json")
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def agent_make(tenant: Tenant, name: str, blueprint: str = "triage", **settings: Any) -> Agent:
    connection.set_tenant(tenant)
    return agent_create(name=name, blueprint=blueprint, **settings)


def task_make(tenant: Tenant, agent: Agent, task_input: dict[str, Any] | None = None, priority: int = 2) -> Task:
    connection.set_tenant(tenant)
    return task_submit(agent_id=agent.pk, input=task_input or BILLING_TICKET, priority=priority)


def task_drive(task: Task, until: set[str], *, limit: int = 20) -> Task:
    """Advance ``task`` in this process (no worker), one step per call at its current attempt,
    until it reaches one of ``until``. The task's schema must be active."""
    for _ in range(limit):
        task = Task.objects.get(pk=task.pk)
        if task.state in until:
            return task
        advance(task_id=task.pk, attempt=task.attempt)
    raise AssertionError(f"task {task.pk} stuck in {Task.objects.get(pk=task.pk).state}")


def approval_opened(
    tenant: Tenant, *, name: str, blueprint: str, task_input: dict[str, Any], privilege_ceiling: int
) -> ApprovalRequest:
    """An agent whose task now waits for a human's decision, and the request it opened."""
    agent = agent_make(tenant, name, blueprint, privilege_ceiling=privilege_ceiling)
    task = task_drive(task_make(tenant, agent, task_input), {"awaiting_approval"})
    return ApprovalRequest.objects.get(task=task)


def audit_verbs(tenant: Tenant, target_type: str, target_id: int) -> list[str]:
    connection.set_tenant(tenant)
    return list(
        AuditEvent.objects.filter(target_type=target_type, target_id=str(target_id))
        .order_by("seq")
        .values_list("verb", flat=True)
    )
