"""Tenants in the worker: a message must name a live tenant's schema or it is refused; a
suspended tenant's tasks stop at the step boundary and go on when it is resumed.

Suspension tests provision a tenant of their own from the warm pool, so that acme and beta,
which other tests share, are never suspended.
"""

from __future__ import annotations

from django.utils import timezone

from agents.models import Task
from agents.services import task_submit
from agents.tasks import sweep_ack_deadlines
from config.connection import connection
from governance.actors import Actor
from tenants.models import Tenant
from tenants.services import provision_request_build, spare_pool_fill, tenant_provision, tenant_resume, tenant_suspend
from tests.agents.helpers_execution import (
    FINAL,
    StartWorker,
    broker_purge,
    only_our_workers,
    outbox_kinds,
    outcome,
    send_advance,
    steps_of,
    transitions_of,
    triage_agent,
    triage_task_after_first_step,
    unique,
    use_tenant,
    wait_for_state,
    wait_until,
    worker_settings,
    worker_start,
)
from tests.conftest import BILLING_TICKET, PASSWORD

__all__ = ["only_our_workers", "worker_settings", "worker_start"]  # fixtures used by the tests below

OPERATOR = Actor.system("tests")


def _runnable_task_without_messages() -> Task:
    """An acme triage task that is assigned (attempt 1) and whose message is gone, so only
    the messages a test sends can move it."""
    task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
    broker_purge()
    return task


def _unchanged(task: Task) -> None:
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt, after.retry_count) == ("assigned", 1, 0)
    assert steps_of(after) == [] and transitions_of(after) == [("queued", "assigned")]


def test_a_message_without_a_schema_is_refused_and_changes_nothing(committed: None, worker_start: StartWorker) -> None:
    use_tenant("acme")
    task = _runnable_task_without_messages()
    worker = worker_start(concurrency=1)

    refused = send_advance(task_id=task.pk, attempt=task.attempt, schema=None)

    assert outcome(worker, refused) == "reject"
    assert "message without a schema name" in worker.log_path.read_text()
    assert "agents.tasks task.refused" in worker.log_path.read_text()
    _unchanged(task)
    # The same message naming its schema runs the task: only the schema was missing.
    assert outcome(worker, send_advance(task_id=task.pk, attempt=task.attempt)) == "stepped"
    assert wait_for_state(task.pk, FINAL).state == "verified"


def test_a_message_for_an_unknown_or_spare_schema_is_refused_and_changes_nothing(
    committed: None, worker_start: StartWorker
) -> None:
    use_tenant("acme")
    task = _runnable_task_without_messages()
    spare_pool_fill(size=1)  # a no-op unless other tests emptied the session's warm pool
    spare = Tenant.objects.filter(status="spare").values_list("schema_name", flat=True).first()
    worker = worker_start(concurrency=1)

    unknown = send_advance(task_id=task.pk, attempt=task.attempt, schema="no_such_tenant")
    pooled = send_advance(task_id=task.pk, attempt=task.attempt, schema=spare)

    assert (outcome(worker, unknown), outcome(worker, pooled)) == ("reject", "reject")
    log = worker.log_path.read_text()
    assert "unknown schema 'no_such_tenant'" in log and f"unknown schema {spare!r}" in log
    use_tenant("acme")
    _unchanged(task)


def _own_tenant() -> Tenant:
    domain = f"{unique('exec')}.localhost"
    request = provision_request_build(
        name="Execution tests", domain=domain, tier="starter", admin_email="admin@exec.example", admin_password=PASSWORD
    )
    tenant = tenant_provision(request=request).tenant
    connection.set_tenant(tenant)
    return tenant


def test_a_suspended_tenants_task_is_held_at_the_step_boundary_and_not_swept(
    committed: None, worker_settings: None, worker_start: StartWorker
) -> None:
    tenant = _own_tenant()
    task = triage_task_after_first_step()  # its next message (attempt 2) is queued

    tenant_suspend(schema_name=tenant.schema_name, actor=OPERATOR)

    worker = worker_start(concurrency=1)
    probe = send_advance(task_id=task.pk, attempt=task.attempt, schema=tenant.schema_name)  # after the queued one
    assert outcome(worker, probe) == "held"
    connection.set_tenant(Tenant.objects.get(pk=tenant.pk))
    held = Task.objects.get(pk=task.pk)
    assert (held.state, held.attempt, held.retry_count) == ("in_progress", task.attempt, 0)
    assert steps_of(held) == [("classify", "record")] and outbox_kinds(held) == []
    # A held task gives up its deadline, so the sweeper can never count it as failed (nor
    # re-send it while its tenant is suspended).
    assert held.ack_deadline is None
    sweep_ack_deadlines()
    connection.set_tenant(Tenant.objects.get(pk=tenant.pk))
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt, after.retry_count, after.last_error) == ("in_progress", task.attempt, 0, "")


def test_resuming_a_suspended_tenant_sends_its_held_task_on(committed: None, worker_start: StartWorker) -> None:
    tenant = _own_tenant()
    task = triage_task_after_first_step()
    tenant_suspend(schema_name=tenant.schema_name, actor=OPERATOR)
    worker = worker_start(concurrency=1)
    probe = send_advance(task_id=task.pk, attempt=task.attempt, schema=tenant.schema_name)
    assert outcome(worker, probe) == "held"

    tenant_resume(schema_name=tenant.schema_name, actor=OPERATOR)

    connection.set_tenant(Tenant.objects.get(pk=tenant.pk))
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert done.retry_count == 0 and done.last_error == ""
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert outbox_kinds(done) == ["reply"]


def test_a_held_task_is_not_counted_as_failed_when_the_sweeper_runs_right_after_resume(
    committed: None, worker_settings: None, worker_start: StartWorker
) -> None:
    """Beat's sweeper runs every few seconds; after a resume it may well run before a worker
    has handled the resume's re-send. A task held on purpose must not lose a retry to it."""
    tenant = _own_tenant()
    task = triage_task_after_first_step()
    tenant_suspend(schema_name=tenant.schema_name, actor=OPERATOR)
    worker = worker_start(concurrency=1)
    assert outcome(worker, send_advance(task_id=task.pk, attempt=task.attempt, schema=tenant.schema_name)) == "held"
    worker.stop()  # the resume's re-send waits on the queue
    ack_deadline = task.ack_deadline
    assert ack_deadline is not None
    wait_until(lambda: timezone.now() > ack_deadline, timeout=10, what="the ack deadline to pass")

    tenant_resume(schema_name=tenant.schema_name, actor=OPERATOR)
    sweep_ack_deadlines()

    connection.set_tenant(Tenant.objects.get(pk=tenant.pk))
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.retry_count, after.last_error) == ("in_progress", 0, "")
