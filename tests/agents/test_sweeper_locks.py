"""The ack-deadline sweeper locks task rows only, never the agent rows they refer to.

The cycle it used to close: a transaction that appended to the tenant's audit trail (holding
the per-schema append lock) and inserted a row referring to an agent waits at COMMIT for the
deferred foreign-key check on that agent row, while the sweeper, holding the agent row
``FOR UPDATE`` along with the task, waits for the audit lock to record the retry. PostgreSQL
breaks the cycle after ``deadlock_timeout`` by failing one of them.

Both sides run on connections of their own (two threads, each with its own Django
connection), on committed rows. No worker consumes the queues meanwhile (``only_our_workers``):
the tasks stay where the tests put them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction

from agents.lease import task_fail
from agents.models import Agent, Task
from agents.services import agent_update, task_submit, tasks_resend_held
from config.connection import connection
from governance.actors import Actor
from governance.services import audit_record
from tests.agents.helpers_execution import database_connect, only_our_workers, triage_agent, use_tenant, wait_until
from tests.conftest import BILLING_TICKET

__all__ = ["only_our_workers"]  # the fixture used by the tests below


class Side(threading.Thread):
    """Runs ``work`` on a connection of its own in the acme schema; keeps its result or error."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid: int | None = None

    def run(self) -> None:
        try:
            use_tenant("acme")
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.pid = cursor.fetchone()[0]
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()


def _appender(agent: Agent, holding: threading.Event, release: threading.Event) -> Callable[[], int]:
    """What a submit (or a step) does: a row that refers to the agent (checked at COMMIT: the
    foreign keys are deferred), then an audit event, whose append lock is held until COMMIT."""

    def work() -> int:
        with transaction.atomic():
            task = Task.objects.create(agent=agent, input=BILLING_TICKET)
            audit_record(actor=Actor.system("test"), verb="task.submitted", target_type="task", target_id=task.pk)
            holding.set()
            assert release.wait(20), "never released"
        return task.pk

    return work


def _waiting_on_the_audit_lock(pid: int | None) -> bool:
    with database_connect(autocommit=True) as conn:
        row = conn.execute("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row == ("Lock", "advisory")


def _race(agent: Agent, sweeper_work: Callable[[], Any]) -> tuple[Side, Side]:
    holding, release = threading.Event(), threading.Event()
    appender = Side(_appender(agent, holding, release))
    appender.start()
    assert holding.wait(20), appender.error
    sweeper = Side(sweeper_work)
    sweeper.start()
    wait_until(
        lambda: _waiting_on_the_audit_lock(sweeper.pid) or not sweeper.is_alive(),
        what="the sweeper to wait for the audit lock",
    )
    release.set()
    appender.join(20)
    sweeper.join(20)
    assert not appender.is_alive() and not sweeper.is_alive()
    return appender, sweeper


def test_a_swept_task_fails_over_without_deadlocking_with_a_transaction_that_holds_the_audit_lock(
    committed: None, only_our_workers: None
) -> None:
    use_tenant("acme")
    task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)

    appender, sweeper = _race(
        task.agent, lambda: task_fail(task_id=task.pk, attempt=task.attempt, error="ack deadline missed")
    )

    assert appender.error is None, appender.error
    assert sweeper.error is None, sweeper.error
    assert sweeper.result == "retry"
    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.retry_count, after.last_error) == ("retrying", 1, "ack deadline missed")
    assert Task.objects.filter(pk=appender.result, agent=task.agent).exists()


def test_resending_held_tasks_does_not_deadlock_with_a_transaction_that_holds_the_audit_lock(
    committed: None, only_our_workers: None
) -> None:
    """The held-task query joins the agent (only enabled agents' tasks); the lock must not."""
    use_tenant("acme")
    task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
    Task.objects.filter(pk=task.pk).update(ack_deadline=None)  # held at a step boundary

    def resend_then_record() -> int:
        with transaction.atomic():
            count = tasks_resend_held()
            # Whatever the sweep records next goes through the audit trail.
            audit_record(actor=Actor.system("engine"), verb="sweep.resent", target_type="task", target_id=task.pk)
            return count

    appender, sweeper = _race(task.agent, resend_then_record)

    assert appender.error is None, appender.error
    assert sweeper.error is None, sweeper.error
    assert sweeper.result >= 1
    after = Task.objects.get(pk=task.pk)
    assert (after.attempt, after.ack_deadline is not None) == (task.attempt + 1, True)


def test_changing_an_agent_does_not_deadlock_with_a_transaction_that_submits_to_it(
    committed: None, only_our_workers: None
) -> None:
    """A change of an agent locks its row, but never its key: the deferred foreign-key check
    of a task being submitted to it does not wait for that lock."""
    use_tenant("acme")
    agent = triage_agent()

    appender, changer = _race(
        agent,
        lambda: (
            agent_update(
                agent_id=agent.pk, user=None, reason="tune", config={**agent.config, "auto_reply": False}
            ).version
        ),
    )

    assert appender.error is None, appender.error
    assert changer.error is None, changer.error
    assert changer.result == agent.version + 1
    assert Task.objects.filter(pk=appender.result, agent=agent).exists()
