from __future__ import annotations

import time
import uuid

from agents.models import OutboxMessage, Task
from agents.services import agent_create, task_submit
from config.connection import connection
from tenants.models import Tenant
from tests.conftest import WorkerHandle

FINAL_STATES = {"verified", "escalated", "cancelled"}


def wait_for(task_id: int, states: set[str], timeout: float = 20) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = Task.objects.get(pk=task_id)
        if task.state in states:
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} stuck in {Task.objects.get(pk=task_id).state}")


def test_triage_agent_classifies_and_replies_on_a_real_worker(committed: None, celery_worker: WorkerHandle) -> None:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    agent = agent_create(name=f"triage-{uuid.uuid4().hex[:6]}", blueprint="triage")
    task = task_submit(
        agent_name=agent.name,
        input={"text": "My invoice shows a double charge, please fix it", "customer_email": "dana@example.com"},
    )
    done = wait_for(task.pk, FINAL_STATES)
    assert done.state == "verified"
    assert done.output is not None
    assert done.output["category"] == "billing"
    assert [(s.action, s.decision) for s in done.steps.all()] == [("classify", "record"), ("send_reply", "allow")]
    assert OutboxMessage.objects.filter(effect__task=done, kind="reply").count() == 1
