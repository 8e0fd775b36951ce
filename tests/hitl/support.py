"""Helpers shared by the queue tests (tests/hitl/test_*.py); no tests here."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from agents.models import Agent, Task, TaskState
from config.connection import connection
from governance.actors import Actor
from governance.roles import user_agent_scope_set
from hitl.models import ApprovalRequest, ReviewerProfile
from hitl.services import approval_open
from tenants.models import Tenant
from tests.agents.api_support import agent_make, member_add, task_drive, task_make
from tests.conftest import ALICE, REFUND_ARGUMENTS, REFUND_TICKET


def reviewer(
    tenant: Tenant, username: str, *, capacity: int = 5, available: bool = True, role: str = "reviewer"
) -> User:
    """A new member of ``tenant`` (staff: they may sign in to the admin) with ``role`` and a
    reviewer profile."""
    user = staff(tenant, username, role)
    ReviewerProfile.objects.create(user=user, capacity=capacity, available=available)
    return user


def staff(tenant: Tenant, username: str, role: str) -> User:
    """A new member of ``tenant`` with ``role`` who may sign in to the admin."""
    user = member_add(tenant, username, role)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


def profile(user: User) -> ReviewerProfile:
    return ReviewerProfile.objects.get(user=user)


def refund_agent(tenant: Tenant, name: str = "refunds") -> Agent:
    return agent_make(tenant, name, "resolution", privilege_ceiling=3)


def refund_waiting(tenant: Tenant, agent: Agent, *, priority: int = 2) -> ApprovalRequest:
    """A refund of ``agent`` waiting at its approval gate (the engine advanced in this process)."""
    task = task_drive(task_make(tenant, agent, REFUND_TICKET, priority=priority), {"awaiting_approval"})
    return ApprovalRequest.objects.get(task=task)


def refund_opened_without_engine(agent: Agent) -> ApprovalRequest:
    """A refund request opened as the engine opens one (hitl.services.approval_open in the
    transaction that parks the task), without running the engine: committed tests use it, so
    that no step message goes to the broker before a worker has declared its queues."""
    with transaction.atomic():
        task = Task.objects.create(agent=agent, input=REFUND_TICKET, state=TaskState.AWAITING_APPROVAL)
        return approval_open(
            task=task,
            step_index=2,
            tool="issue_refund",
            level=3,
            arguments=REFUND_ARGUMENTS,
            reasoning="the parcel arrived broken",
            required_role="reviewer",
            actor=Actor.system("test"),
        )


def review_scope(tenant: Tenant, user: User, *agents: Agent) -> None:
    connection.set_tenant(tenant)
    user_agent_scope_set(
        user=user, grant="review_agent", agent_ids=[a.pk for a in agents], actor=User.objects.get(username=ALICE)
    )
