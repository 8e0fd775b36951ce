"""At-least-once delivery, exactly-once effects: stale and duplicate messages, a worker killed
mid-step, a next-step message lost after COMMIT, a cancel between steps, an approved action
altered before it runs.

Only the workers these tests start consume the queues (``only_our_workers``), so a test can
run a step in this process (``advance_here``: the engine's own entry point, as a worker calls
it) while nobody consumes, then start a worker and know what it will find. A worker started
with ``concurrency=1`` takes messages one at a time in the order they were sent (Redis lists
are FIFO), so once the outcome of a message sent last is logged, every earlier one was handled.
"""

from __future__ import annotations

import json
import os
import signal

from django.conf import settings
from django.utils import timezone

from agents.engine import advance
from agents.models import Effect, Task
from agents.selectors import tasks_overdue
from agents.services import agent_status_set, task_cancel, task_submit
from agents.tasks import sweep_ack_deadlines
from config.connection import connection
from hitl.models import ApprovalRequest
from hitl.services import approval_decide
from tests.agents.helpers_execution import (
    FINAL,
    STEP_STATEMENT,
    StartWorker,
    advance_here,
    audit_trail_locked,
    backend_alive,
    broker_purge,
    effect_keys,
    holds_row_exclusive,
    lock_waiters,
    only_our_workers,
    outbox_kinds,
    outcome,
    resolution_agent,
    send_advance,
    steps_of,
    transitions_of,
    triage_task_after_first_step,
    use_tenant,
    user,
    wait_for_state,
    wait_until,
    waiting_for,
    worker_settings,
    worker_start,
)
from tests.conftest import ALICE, REFUND_ARGUMENTS, REFUND_TICKET

__all__ = ["only_our_workers", "worker_settings", "worker_start"]  # fixtures used by the tests below


def _resolution_task_approved() -> tuple[Task, ApprovalRequest]:
    """A resolution task run in this process up to its refund's gate, then approved by alice."""
    task = task_submit(agent_name=resolution_agent().name, input=REFUND_TICKET)
    assert [advance_here(task.pk) for _ in range(3)] == ["stepped", "stepped", "awaiting_approval"]
    request = ApprovalRequest.objects.get(task=task)
    approval_decide(approval_id=request.pk, user=user(ALICE), verdict="approve", seen_hash=request.action_hash)
    return Task.objects.get(pk=task.pk), request


def test_a_message_of_an_earlier_attempt_is_dropped_as_stale(committed: None, worker_start: StartWorker) -> None:
    use_tenant("acme")
    task = triage_task_after_first_step()
    events = transitions_of(task)

    assert advance(task_id=task.pk, attempt=1) == "stale"

    after = Task.objects.get(pk=task.pk)
    assert (after.state, after.attempt, after.updated_at) == ("in_progress", 2, task.updated_at)
    assert steps_of(after) == [("classify", "record")] and transitions_of(after) == events
    # On a worker: attempt 1 arrives while the task is at attempt 2, then attempt 2 itself.
    broker_purge()
    old, current = send_advance(task_id=task.pk, attempt=1), send_advance(task_id=task.pk, attempt=2)
    worker = worker_start(concurrency=1)
    assert (outcome(worker, old), outcome(worker, current)) == ("stale", "stepped")
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert outbox_kinds(done) == ["reply"]


def test_an_approval_message_delivered_twice_at_once_runs_the_refund_once(
    committed: None, worker_start: StartWorker
) -> None:
    """Both copies of the approval's message run at the same time on two pool processes, each
    in the step statement: the first holds the task row and waits (its refund written, not
    committed) on the audit trail we lock; the second waits for the task row. Released, one
    steps, one is stale.
    This is the concurrent duplicate that Redis produces when ``visibility_timeout`` passes
    while a late-ack step still runs (kombu re-delivers the unacked message)."""
    use_tenant("acme")
    task, request = _resolution_task_approved()
    broker_purge()

    with audit_trail_locked("acme") as lock:
        copies = [send_advance(task_id=task.pk, attempt=task.attempt) for _ in range(2)]
        worker = worker_start(concurrency=2)

        def both_waiting() -> list[int]:
            waiting = lock_waiters(STEP_STATEMENT)
            return waiting if len(waiting) == 2 else []

        both = wait_until(both_waiting, what="both copies waiting in the step statement")
        # Both hold the step statement's table locks; one waits on the audit trail, one on the row.
        writer, second = sorted(both, key=lambda pid: waiting_for(pid) != "relation")
        assert (waiting_for(writer), waiting_for(second)) in {("relation", "transactionid"), ("relation", "tuple")}
        assert holds_row_exclusive(writer, "acme.agents_effect")
        assert holds_row_exclusive(writer, "acme.agents_outboxmessage")
        lock.rollback()

    assert sorted(outcome(worker, copy) for copy in copies) == ["stale", "stepped"]
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert Effect.objects.filter(idempotency_key=f"approval:{request.pk}").count() == 1
    assert outbox_kinds(done) == ["refund", "reply"]
    assert [s for s in steps_of(done) if s[0] == "issue_refund"] == [("issue_refund", "approved")]


def test_a_worker_killed_after_writing_the_effect_reruns_the_step_and_sends_one_reply(
    committed: None, worker_start: StartWorker
) -> None:
    """The step's statement has written the Effect and the Step and waits on the audit trail we
    lock, which it appends to last (a deterministic 'slow' point after the effect, before COMMIT
    and the ack). SIGKILL of the pool process loses the transaction (PostgreSQL notices the dead
    client within a second, even while the statement waits, and rolls it back) and the unacked
    message comes back (acks_late + reject_on_worker_lost) to the pool's next process, which
    runs the step again."""
    use_tenant("acme")
    task = triage_task_after_first_step()
    broker_purge()

    with audit_trail_locked("acme") as lock:
        message = send_advance(task_id=task.pk, attempt=task.attempt)
        worker = worker_start(concurrency=1)
        [writer] = wait_until(lambda: lock_waiters(STEP_STATEMENT), what="the step waiting on the audit trail")
        assert holds_row_exclusive(writer, "acme.agents_effect")
        assert holds_row_exclusive(writer, "acme.agents_outboxmessage")
        [child] = worker.children()
        os.kill(child, signal.SIGKILL)
        wait_until(lambda: "WorkerLostError" in worker.log_path.read_text(), what="the worker to notice the loss")
        # PostgreSQL notices the dead client while the statement waits
        # (client_connection_check_interval) and rolls the step back.
        wait_until(lambda: not backend_alive(writer), what="the killed worker's backend to end")
        lock.rollback()

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert worker.log_path.read_text().count(f"[{message}] received") == 2  # delivered again
    assert outcome(worker, message) == "stepped"
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert effect_keys(done) == [f"task:{task.pk}:step:1"]
    assert outbox_kinds(done) == ["reply"]
    assert done.retry_count == 0


def test_a_next_step_message_lost_after_commit_is_resent_by_the_ack_deadline_sweeper(
    committed: None, worker_settings: None, worker_start: StartWorker
) -> None:
    """A worker that dies between its step's COMMIT and sending the next message: the step
    runs in this process while nobody consumes, then the next message is taken off the queue
    before any worker sees it (what is committed stays; what was to be sent never arrives).
    Once the lease's ack deadline passes, beat's sweeper (called here) re-sends the task as a
    retry and a worker finishes it."""
    use_tenant("acme")
    task = triage_task_after_first_step()
    assert broker_purge() >= 1
    worker_start()

    wait_until(
        lambda: (task.pk, task.attempt) in tasks_overdue(),
        timeout=settings.TASK_ACK_TIMEOUT_SECONDS + 5,
        what="the ack deadline to pass",
    )
    assert sweep_ack_deadlines() >= 1

    use_tenant("acme")  # the sweeper visits every tenant and leaves the connection in public
    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert (done.retry_count, done.last_error) == (1, "ack deadline missed")
    assert ("in_progress", "retrying") in transitions_of(done)
    assert done.events.get(to_state="retrying").reason == "ack deadline missed"
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert outbox_kinds(done) == ["reply"]


def test_a_paused_agents_task_is_held_not_swept_and_goes_on_when_the_agent_is_enabled(
    committed: None, worker_settings: None, worker_start: StartWorker
) -> None:
    use_tenant("acme")
    task = triage_task_after_first_step()
    agent_status_set(agent_id=task.agent_id, status="paused", user=user(ALICE))
    worker = worker_start(concurrency=1)

    probe = send_advance(task_id=task.pk, attempt=task.attempt)  # after the step's own message

    assert outcome(worker, probe) == "held"
    ack_deadline = task.ack_deadline
    assert ack_deadline is not None
    wait_until(
        lambda: timezone.now() > ack_deadline,
        timeout=settings.TASK_ACK_TIMEOUT_SECONDS + 5,
        what="the ack deadline to pass",
    )
    assert (task.pk, task.attempt) not in tasks_overdue()
    sweep_ack_deadlines()
    use_tenant("acme")
    held = Task.objects.get(pk=task.pk)
    assert (held.state, held.attempt, held.retry_count, held.last_error) == ("in_progress", task.attempt, 0, "")
    assert steps_of(held) == [("classify", "record")]

    agent_status_set(agent_id=task.agent_id, status="enabled", user=user(ALICE))

    done = wait_for_state(task.pk, FINAL)
    assert done.state == "verified"
    assert done.retry_count == 0
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert outbox_kinds(done) == ["reply"]


def test_cancelling_between_steps_makes_the_queued_next_step_stale(committed: None, worker_start: StartWorker) -> None:
    use_tenant("acme")
    task = triage_task_after_first_step()

    task_cancel(task_id=task.pk, user=user(ALICE), reason="duplicate ticket")

    worker = worker_start(concurrency=1)
    late = send_advance(task_id=task.pk, attempt=task.attempt)  # the next step's message, once more, last
    assert outcome(worker, late) == "stale"
    after = Task.objects.get(pk=task.pk)
    assert after.state == "cancelled"
    assert transitions_of(after)[-1] == ("in_progress", "cancelled")
    assert steps_of(after) == [("classify", "record")]
    assert effect_keys(after) == [] and outbox_kinds(after) == []


def test_an_approved_action_altered_before_the_worker_runs_it_is_refused_then_escalated(
    committed: None, worker_start: StartWorker
) -> None:
    use_tenant("acme")
    task, request = _resolution_task_approved()
    with connection.cursor() as cursor:  # after the decision, before any worker runs it
        cursor.execute(
            "UPDATE hitl_approvalrequest SET arguments = %s WHERE id = %s",
            [json.dumps({**REFUND_ARGUMENTS, "amount": 2500.0}), request.pk],
        )

    worker_start()

    done = wait_for_state(task.pk, FINAL, timeout=40)
    assert done.state == "escalated"
    assert f"approved action {request.pk} no longer matches its hash" in done.last_error
    assert done.retry_count == settings.TASK_MAX_RETRIES + 1
    assert transitions_of(done)[-2:] == [("in_progress", "retrying"), ("retrying", "escalated")]
    assert steps_of(done) == [("classify", "record"), ("draft", "record")]
    assert not Effect.objects.filter(idempotency_key=f"approval:{request.pk}").exists()
    assert effect_keys(done) == [] and outbox_kinds(done) == []
