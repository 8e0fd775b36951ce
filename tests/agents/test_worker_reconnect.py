"""A worker recovers by itself when the database drops its connection: the server ending the
worker's backend (``pg_terminate_backend``, what a database restart does to every client)
between two tasks costs no task, and a connection that breaks inside a task costs only that
task, never the ones after it.

The shared PostgreSQL server is never restarted: the test terminates the backends of the
worker's processes on the test database, from its own connection.
"""

from __future__ import annotations

from agents.models import Task
from agents.services import task_submit
from config.connection import connection
from tests.agents.helpers_execution import (
    AUDIT_INSERT,
    FINAL,
    StartWorker,
    audit_trail_locked,
    database_connect,
    lock_waiters,
    only_our_workers,
    steps_of,
    triage_agent,
    triage_task_after_first_step,
    use_tenant,
    wait_for_state,
    wait_until,
    worker_start,
)
from tests.conftest import BILLING_TICKET

__all__ = ["only_our_workers", "worker_start"]  # fixtures used by the tests below

# Every client backend of the test database but the test's own: the worker's.
OTHER_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = "
    "'client backend' AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)"
)


def _terminate_the_workers_backends(*, sparing: tuple[int, ...] = ()) -> list[int]:
    """End the worker's connections from the server's side, as a restart would (all but this
    test's connection and those in ``sparing``); returns their pids once PostgreSQL has
    reaped them."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pid, pg_terminate_backend(pid) FROM ({OTHER_BACKENDS}) AS other", [list(sparing)])
        ended = [pid for pid, done in cursor.fetchall() if done]

    def reaped() -> bool:
        with database_connect(autocommit=True) as conn:
            return not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [ended]).fetchone()

    wait_until(reaped, what="the terminated backends to end")
    return ended


def _a_new_task_runs_to_the_end() -> Task:
    task = task_submit(agent_name=triage_agent().name, input=BILLING_TICKET)
    done = wait_for_state(task.pk, FINAL)
    assert (done.state, done.retry_count, done.last_error) == ("verified", 0, "")
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    return done


def test_a_worker_whose_connection_the_server_ended_between_two_tasks_runs_the_next_one(
    committed: None, worker_start: StartWorker
) -> None:
    use_tenant("acme")
    worker = worker_start(concurrency=1)
    _a_new_task_runs_to_the_end()  # the worker's pool process now holds a connection

    assert _terminate_the_workers_backends()

    _a_new_task_runs_to_the_end()
    assert " raised " not in worker.log_path.read_text()


def test_a_connection_that_breaks_inside_a_task_costs_that_task_only(
    committed: None, worker_start: StartWorker
) -> None:
    """The step waits on the audit trail we lock, its backend is ended under it: that message
    fails (the sweeper re-sends its task later); the next task runs on a new connection."""
    use_tenant("acme")
    task = triage_task_after_first_step()
    with audit_trail_locked("acme") as lock:
        worker = worker_start(concurrency=1)
        wait_until(
            lambda: lock_waiters(AUDIT_INSERT) or lock_waiters("WITH claim AS%"),
            what="the step waiting on the audit trail",
        )
        assert _terminate_the_workers_backends(sparing=(lock.info.backend_pid,))
        wait_until(lambda: " raised " in worker.log_path.read_text(), what="the step to fail")
        lock.rollback()

    broken = Task.objects.get(pk=task.pk)
    assert (broken.state, broken.attempt, steps_of(broken)) == ("in_progress", task.attempt, [("classify", "record")])
    _a_new_task_runs_to_the_end()
