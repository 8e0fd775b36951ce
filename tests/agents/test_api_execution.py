"""``POST /agents/{id}/execute/?wait=S`` against a real Celery worker: the API answers with the
finished task. These tests commit (the worker is another process), so names are unique."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from agents.models import OutboxMessage, Task
from config.connection import connection
from hitl.models import ApprovalRequest
from tenants.models import Tenant
from tests.conftest import ALICE, BILLING_TICKET, REFUND_TICKET

from .api_support import token_for

pytestmark = pytest.mark.slow


def _alice() -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Token {token_for(Client(HTTP_HOST='acme.localhost'), ALICE)}"}


def _agent(auth: dict[str, Any], blueprint: str, **fields: object) -> str:
    name = f"api-{blueprint}-{uuid.uuid4().hex[:8]}"
    response = Client(HTTP_HOST="acme.localhost").post(
        "/api/v1/agents/", {"name": name, "blueprint": blueprint, **fields}, content_type="application/json", **auth
    )
    assert response.status_code == 201, response.content
    return name


def test_execute_with_wait_returns_200_with_the_verified_task_from_a_real_worker(
    committed: None, celery_worker: object
) -> None:
    auth = _alice()
    name = _agent(auth, "triage")
    response = Client(HTTP_HOST="acme.localhost").post(
        f"/api/v1/agents/{name}/execute/?wait=10", {"input": BILLING_TICKET}, content_type="application/json", **auth
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["agent"], body["state"], body["output"]["category"]) == (name, "verified", "billing")
    assert [(s["action"], s["decision"]) for s in body["steps"]] == [("classify", "record"), ("send_reply", "allow")]
    assert body["events"][-1]["to_state"] == "verified"
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    task = Task.objects.get(pk=body["id"])
    assert task.created_by is not None
    assert (task.state, task.agent.name, task.created_by.username) == ("verified", name, ALICE)
    assert OutboxMessage.objects.filter(effect__task=task, kind="reply").count() == 1


def test_execute_with_wait_returns_as_soon_as_the_task_waits_for_approval(
    committed: None, celery_worker: object
) -> None:
    auth = _alice()
    name = _agent(auth, "resolution", privilege_ceiling=3)
    response = Client(HTTP_HOST="acme.localhost").post(
        f"/api/v1/agents/{name}/execute/?wait=10", {"input": REFUND_TICKET}, content_type="application/json", **auth
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "awaiting_approval"
    assert [s["action"] for s in body["steps"]] == ["classify", "draft"]
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    approval = ApprovalRequest.objects.get(task_id=body["id"])
    assert (approval.tool, approval.status, approval.arguments["amount"]) == ("issue_refund", "pending", 25.0)
