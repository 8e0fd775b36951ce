"""A plain step is two statements: the snapshot read and the step statement, which writes the
lease, the effect, its outbox message, the step and the audit event together, or nothing.
Both are prepared on the server once per connection and serve every tenant's schema."""

from __future__ import annotations

from typing import Any

import pytest

from agents.engine import advance
from agents.models import Effect, Step, Task
from agents.selectors import task_snapshot
from agents.services import task_submit
from config.connection import connection
from governance.models import AuditEvent
from governance.verification import audit_chain_verify
from tenants.models import Tenant
from tests.agents.helpers_execution import (
    advance_here,
    outbox_kinds,
    steps_of,
    triage_agent,
    triage_task_after_first_step,
)
from tests.conftest import BILLING_TICKET

pytestmark = pytest.mark.django_db


def _statements_of_next_step(task: Task) -> tuple[str, list[str]]:
    sent: list[str] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # A test runs inside a transaction, where the step statement gets a savepoint; a
        # worker runs in autocommit, where it does not.
        if "SAVEPOINT" not in sql:
            sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        outcome = advance(task_id=task.pk, attempt=task.attempt)
    return outcome, sent


def test_a_tool_step_is_the_snapshot_read_and_one_statement(in_acme: Tenant) -> None:
    task = triage_task_after_first_step()
    audit_before = AuditEvent.objects.count()

    outcome, sent = _statements_of_next_step(task)

    assert outcome == "stepped"
    assert len(sent) == 2
    assert "FROM agents_task t JOIN agents_agent a" in sent[0]
    assert sent[1].startswith("WITH claim AS (UPDATE agents_task")
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt) == ("in_progress", task.attempt + 1)
    assert steps_of(after) == [("classify", "record"), ("send_reply", "allow")]
    assert list(Effect.objects.filter(task=after).values_list("idempotency_key", flat=True)) == [
        f"task:{task.pk}:step:1"
    ]
    assert outbox_kinds(after) == ["reply"]
    (event,) = AuditEvent.objects.order_by("seq")[audit_before:]
    assert (event.verb, event.target_id, event.data["action"], event.data["decision"]) == (
        "agent.step",
        str(task.pk),
        "send_reply",
        "allow",
    )
    assert audit_chain_verify().ok


def test_a_message_that_lost_its_lease_writes_nothing(in_acme: Tenant) -> None:
    task = triage_task_after_first_step()
    Task.objects.filter(pk=task.pk).update(attempt=task.attempt + 1)  # another delivery moved on
    steps, effects, events = Step.objects.count(), Effect.objects.count(), AuditEvent.objects.count()

    assert advance(task_id=task.pk, attempt=task.attempt) == "stale"

    assert (Step.objects.count(), Effect.objects.count(), AuditEvent.objects.count()) == (steps, effects, events)


def _run_to_the_end(task_id: int) -> None:
    while advance_here(task_id) == "stepped":
        pass


def test_prepared_statements_write_each_tenant_into_its_own_schema(acme: Tenant, beta: Tenant) -> None:
    """The same connection, and so the same prepared statements, runs steps for both tenants;
    PostgreSQL re-plans a prepared statement when the search_path changes."""
    tasks: dict[str, list[int]] = {"acme": [], "beta": []}
    for _ in range(4):  # more runs than the server's five custom plans before a generic one
        for tenant in (acme, beta):
            connection.set_tenant(tenant)
            task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
            _run_to_the_end(task.pk)
            tasks[tenant.schema_name].append(task.pk)

    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(sql.startswith("WITH claim AS") for sql in prepared)
    for tenant in (acme, beta):
        connection.set_tenant(tenant)
        mine = Task.objects.filter(pk__in=tasks[tenant.schema_name])
        assert sorted(mine.values_list("state", flat=True)) == ["verified"] * 4
        assert Step.objects.filter(task__in=mine).count() == 4 * 2
        assert Effect.objects.filter(task__in=mine).count() == 4
        assert Effect.objects.exclude(task__in=Task.objects.all()).count() == 0
        assert audit_chain_verify().ok


def test_a_step_whose_effect_key_is_taken_fails_instead_of_recording_twice(in_acme: Tenant) -> None:
    """The key task:<id>:step:<index> can only be taken by this very step, written with its
    Step row; should it be taken anyway, the statement fails (nothing of it stays) and the
    step is retried like any failure, and the caller's transaction stays usable."""
    task = triage_task_after_first_step()
    Effect.objects.create(
        idempotency_key=f"task:{task.pk}:step:1",
        task=task,
        step_index=1,
        tool="send_reply",
        arguments_hash="0" * 64,
        result={},
    )
    steps, events = Step.objects.count(), AuditEvent.objects.count()

    assert advance(task_id=task.pk, attempt=task.attempt) == "retry"

    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.retry_count) == ("retrying", 1)
    assert "agents_effect" in after.last_error or "idempotency" in after.last_error
    assert Step.objects.count() == steps
    assert outbox_kinds(after) == []
    assert [e.verb for e in AuditEvent.objects.order_by("seq")[events:]] == ["task.transition"]


def test_the_snapshot_of_a_long_task_holds_the_latest_step_of_each_action_not_every_step(in_acme: Tenant) -> None:
    """A blueprint reads the latest step of an action and how many steps there are; the
    snapshot loads no more, so a step's cost does not grow with the task's length."""
    task = triage_task_after_first_step()
    Step.objects.bulk_create(
        [
            Step(
                task=task,
                index=i,
                action="send_reply",
                arguments={"to": f"c{i}@example.com"},
                result={"sent": True},
                decision="allow",
            )
            for i in range(1, 300)
        ]
    )

    snapshot = task_snapshot(task_id=task.pk)

    assert snapshot is not None
    assert snapshot.count == 300
    assert [(s.index, s.action) for s in snapshot.latest] == [(0, "classify"), (299, "send_reply")]
    assert snapshot.latest[1].arguments == {"to": "c299@example.com"}
    assert (snapshot.task.pk, snapshot.agent.pk, snapshot.gated) == (task.pk, task.agent_id, False)
    assert "send_reply" in snapshot.granted


def test_the_next_step_is_written_after_the_last_one_whatever_came_between(in_acme: Tenant) -> None:
    task = triage_task_after_first_step()  # classify at 0
    Step.objects.bulk_create([Step(task=task, index=i, action="lookup", decision="record") for i in (1, 2, 3)])

    assert advance_here(task.pk) == "stepped"

    assert steps_of(Task.objects.get(pk=task.pk))[-2:] == [("lookup", "record"), ("send_reply", "allow")]
    assert Step.objects.get(task=task, action="send_reply").index == 4
