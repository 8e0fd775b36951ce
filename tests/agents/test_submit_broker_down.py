"""Submitting while the broker is down: the task is committed before its first message is
sent, so the API accepts it (202) and the send's failure is only logged; once the broker is
back, the ack-deadline sweeper re-sends the task and a worker runs it. A client that retries
with the same Idempotency-Key gets the same task, not a second one.

The broker is "down" for this process only: its Celery producer points at a local port that
refuses connections, while the worker keeps the session's Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from agents.models import Task
from agents.selectors import tasks_overdue
from agents.tasks import sweep_ack_deadlines
from tests.agents.helpers_execution import (
    FINAL,
    StartWorker,
    closed_port,
    only_our_workers,
    steps_of,
    transitions_of,
    triage_agent,
    use_tenant,
    wait_for_state,
    wait_until,
    worker_settings,
    worker_start,
)
from tests.conftest import ALICE, BILLING_TICKET

from .api_support import token_for

__all__ = ["only_our_workers", "worker_settings", "worker_start"]  # fixtures used by the tests below


def _producer_at(url: str) -> None:
    """Point this process's Celery producer at ``url``, dropping the connections it pooled."""
    from kombu import pools

    from config.celery import app

    pools.reset()
    app.conf["broker_url"] = url  # what attribute assignment does at runtime; the stubs make the attribute read-only
    app._pool = None  # type: ignore[attr-defined]  # private pool attribute, not in the stubs
    app.amqp._producer_pool = None  # type: ignore[attr-defined]  # private pool attribute, not in the stubs


@contextmanager
def broker_unreachable() -> Iterator[None]:
    from config.celery import app

    before = app.conf.broker_url
    refusing = closed_port()
    _producer_at(f"redis://127.0.0.1:{refusing.getsockname()[1]}/0")
    try:
        yield
    finally:
        _producer_at(before)
        refusing.close()


def _execute(auth: dict[str, Any], agent: str, key: str) -> Any:
    return Client(HTTP_HOST="acme.localhost").post(
        f"/api/v1/agents/{agent}/execute/",
        {"input": BILLING_TICKET},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
        **auth,
    )


def test_a_task_submitted_while_the_broker_is_down_is_accepted_once_and_runs_when_the_broker_is_back(
    committed: None, worker_settings: None, worker_start: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    use_tenant("acme")
    agent = triage_agent()
    auth = {"HTTP_AUTHORIZATION": f"Token {token_for(Client(HTTP_HOST='acme.localhost'), ALICE)}"}
    worker = worker_start(concurrency=1)  # on the real broker: it never hears of the task

    with broker_unreachable(), caplog.at_level(logging.WARNING, logger="agents"):
        first = _execute(auth, agent.name, "ticket-4411")
        retried = _execute(auth, agent.name, "ticket-4411")  # the client's retry after a timeout

    assert (first.status_code, retried.status_code) == (202, 202), first.content
    assert first.json()["id"] == retried.json()["id"]
    use_tenant("acme")
    [task] = Task.objects.filter(agent=agent)
    assert (task.pk, task.state, task.attempt) == (first.json()["id"], "assigned", 1)
    failed_sends = [r for r in caplog.records if r.getMessage() == "task.send_failed"]
    assert [(r.task_id, r.attempt) for r in failed_sends] == [(task.pk, 1)]  # type: ignore[attr-defined]

    wait_until(
        lambda: (task.pk, 1) in tasks_overdue(),
        timeout=settings.TASK_ACK_TIMEOUT_SECONDS + 5,
        what="the first message's ack deadline to pass",
    )
    assert sweep_ack_deadlines() >= 1

    use_tenant("acme")
    done = wait_for_state(task.pk, FINAL)
    assert (done.state, done.retry_count, done.last_error) == ("verified", 1, "ack deadline missed")
    assert transitions_of(done)[:2] == [("queued", "assigned"), ("assigned", "retrying")]
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert " raised " not in worker.log_path.read_text()
