"""A failing step on a real worker: retried with exponential backoff, escalated to humans once
TASK_MAX_RETRIES (3) retries are spent, never dropped.

The failure is real, not patched in: the agent names an operator's LLM connection to a local
port that refuses connections (or to a stub that fails the first call), and the worker has the
connection's API key in its environment, as a deployment would. What the task keeps of a
failure is a short message; the endpoint's answer goes to the worker log only.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings

from agents.models import Task
from agents.services import task_submit
from governance.actors import Actor
from governance.models import AuditEvent
from tenants.connections import llm_connection_create
from tests.agents.helpers_execution import (
    FINAL,
    StartWorker,
    closed_port,
    only_our_workers,
    openai_stub,
    outbox_kinds,
    steps_of,
    transitions_of,
    triage_agent,
    unique,
    use_tenant,
    wait_until,
    worker_start,
)
from tests.conftest import BILLING_TICKET

__all__ = ["only_our_workers", "worker_start"]  # fixtures used by the tests below

KEY_ENV = {"LLM_TEST_KEY": "sk-test-retries"}
_LOGGED = re.compile(
    r"^(\S+ \S+) INFO celery\.\S+ Task agents\.advance_task\[(\S+)\] "
    r"(?:(received)|succeeded in ([0-9.]+)s)",
    re.MULTILINE,
)


def _waits_before_running(log: str) -> list[float]:
    """For each message the worker ran, in order: seconds between its arrival and the start of
    its run (a retry's message carries its backoff as a countdown)."""
    arrived: dict[str, float] = {}
    waits = []
    for stamp, message, received, took in _LOGGED.findall(log):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if received:
            arrived[message] = at
        else:
            waits.append(at - float(took) - arrived[message])
    return waits


def _connection_to(base_url: str) -> dict[str, Any]:
    """An operator's connection to ``base_url``, granted to acme; returns an agent's model
    settings naming it (the connection is left on acme's schema)."""
    name = unique("retries")
    llm_connection_create(
        name=name,
        base_url=base_url,
        api_key_env="LLM_TEST_KEY",
        allowed_models=["gpt-4o-mini"],
        timeout_seconds=5,
        tenants=["acme"],
        actor=Actor.operator("tester"),
    )
    use_tenant("acme")
    return {"connection": name, "model": "gpt-4o-mini"}


def test_a_step_that_keeps_failing_is_retried_with_backoff_then_escalated(
    committed: None, celery_env: dict[str, str], worker_start: StartWorker
) -> None:
    use_tenant("acme")
    refusing = closed_port()
    try:
        model_settings = _connection_to(f"http://127.0.0.1:{refusing.getsockname()[1]}/v1")
        agent = triage_agent(model_settings=model_settings)
        worker = worker_start(env=KEY_ENV)
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
        seen: list[tuple[str, int]] = []

        def finished() -> Task | None:
            current = Task.objects.get(pk=task.pk)
            if not seen or seen[-1] != (current.state, current.retry_count):
                seen.append((current.state, current.retry_count))
            return current if current.state in FINAL else None

        done = wait_until(finished, timeout=60, what="the task to give up")
    finally:
        refusing.close()

    assert done.state == "escalated"
    assert done.retry_count == settings.TASK_MAX_RETRIES + 1 == 4
    # Each retry waits its backoff (and the client's own retry) for well over the 50 ms poll.
    assert [s for s in seen if s != ("assigned", 0)] == [
        ("retrying", 1),
        ("retrying", 2),
        ("retrying", 3),
        ("escalated", 4),
    ]
    failed = (
        f"LLMError: the model connection {model_settings['connection']!r} failed (APIConnectionError); "
        "see the worker log"
    )
    assert done.last_error == failed
    assert transitions_of(done) == [("queued", "assigned"), ("assigned", "retrying"), ("retrying", "escalated")]
    reasons = dict(((e.from_state, e.to_state), e.reason) for e in done.events.all())
    assert reasons[("assigned", "retrying")] == failed
    assert reasons[("retrying", "escalated")].startswith("gave up after 3 retries: LLMError")
    assert steps_of(done) == [] and outbox_kinds(done) == []
    assert worker.log_path.read_text().count("agents.engine step.failed") == 4
    # Full jitter: retry n waits between half and all of base·2^(n-1) (base 0.2 s here).
    base = float(celery_env["TASK_RETRY_BASE_DELAY"])
    waits = _waits_before_running(worker.log_path.read_text())
    assert len(waits) == 4
    for retry, waited in enumerate(waits[1:], start=1):
        assert waited >= base * 2 ** (retry - 1) / 2 - 0.05, (retry, waits)


def test_a_step_that_fails_once_is_retried_and_the_task_completes_keeping_no_error_body(
    committed: None, worker_start: StartWorker
) -> None:
    use_tenant("acme")
    secret = "upstream said: Bearer sk-live-0123456789 DATABASE_URL=postgres://app:hunter2@db/vigil"
    with openai_stub() as stub:
        calls = iter(range(1000))

        def fail_first(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if next(calls) == 0:
                return 500, {"error": {"message": secret, "type": "server_error"}}
            return stub.by_schema_name(body)

        stub.reply = fail_first
        model_settings = _connection_to(stub.base_url)
        agent = triage_agent(model_settings=model_settings)
        worker = worker_start(env=KEY_ENV)
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
        done = wait_until(
            lambda: (t := Task.objects.get(pk=task.pk)).state in FINAL and t, timeout=30, what="the task to finish"
        )

    assert done.state == "verified"
    assert done.retry_count == 1
    assert done.last_error == (
        f"LLMError: the model connection {model_settings['connection']!r} failed (HTTP 500); see the worker log"
    )
    kept = [
        done.last_error,
        *done.events.values_list("reason", flat=True),
        *(str(e.data) for e in AuditEvent.objects.filter(target_type="task", target_id=str(done.pk))),
    ]
    assert [text for text in kept if "hunter2" in text] == []
    log = worker.log_path.read_text()
    assert "llm.call_failed" in log and "hunter2" in log  # the detail is for the operator
    assert transitions_of(done) == [
        ("queued", "assigned"),
        ("assigned", "retrying"),
        ("retrying", "acked"),
        ("acked", "in_progress"),
        ("in_progress", "completed"),
        ("completed", "verified"),
    ]
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert len(stub.requests) == 2
