"""A failing step on a real worker: retried with exponential backoff, escalated to humans once
TASK_MAX_RETRIES (3) retries are spent, never dropped.

The failure is real, not patched in: the agent's model settings point the OpenAI provider at
a local port that refuses connections (or at a stub that refuses the first call), and the
worker has the API key in its environment, as a deployment would.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings

from agents.models import Task
from agents.services import task_submit
from tests.agents.helpers_execution import (BILLING_TICKET, FINAL, StartWorker, closed_port, only_our_workers,
                                            openai_stub, outbox_kinds, steps_of, transitions_of, triage_agent,
                                            use_tenant, wait_until, worker_start)

__all__ = ["only_our_workers", "worker_start"]  # fixtures used by the tests below

KEY_ENV = {"VIGIL_TEST_KEY": "sk-test-retries"}
_LOGGED = re.compile(r"^(\S+ \S+) INFO celery\.\S+ Task agents\.advance_task\[(\S+)\] "
                     r"(?:(received)|succeeded in ([0-9.]+)s)", re.MULTILINE)


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


def _openai_settings(base_url: str) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o-mini", "base_url": base_url, "api_key_env": "VIGIL_TEST_KEY",
            "timeout": 5}


def test_a_step_that_keeps_failing_is_retried_with_backoff_then_escalated(
        committed: None, celery_env: dict[str, str], worker_start: StartWorker) -> None:
    use_tenant("acme")
    refusing = closed_port()
    try:
        agent = triage_agent(model_settings=_openai_settings(f"http://127.0.0.1:{refusing.getsockname()[1]}/v1"))
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
    assert [s for s in seen if s != ("assigned", 0)] == [("retrying", 1), ("retrying", 2), ("retrying", 3),
                                                         ("escalated", 4)]
    assert done.last_error.startswith("LLMError: gpt-4o-mini: APIConnectionError")
    assert transitions_of(done) == [("queued", "assigned"), ("assigned", "retrying"), ("retrying", "escalated")]
    reasons = dict(((e.from_state, e.to_state), e.reason) for e in done.events.all())
    assert reasons[("assigned", "retrying")].startswith("LLMError: gpt-4o-mini: APIConnectionError")
    assert reasons[("retrying", "escalated")].startswith("gave up after 3 retries: LLMError")
    assert steps_of(done) == [] and outbox_kinds(done) == []
    assert worker.log_path.read_text().count("agents.engine step.failed") == 4
    # Full jitter: retry n waits between half and all of base·2^(n-1) (base 0.2 s here).
    base = float(celery_env["TASK_RETRY_BASE_DELAY"])
    waits = _waits_before_running(worker.log_path.read_text())
    assert len(waits) == 4
    for retry, waited in enumerate(waits[1:], start=1):
        assert waited >= base * 2 ** (retry - 1) / 2 - 0.05, (retry, waits)


def test_a_step_that_fails_once_is_retried_and_the_task_completes(committed: None, worker_start: StartWorker) -> None:
    use_tenant("acme")
    with openai_stub() as stub:
        calls = iter(range(1000))

        def refuse_first(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if next(calls) == 0:
                return 401, {"error": {"message": "bad key", "type": "invalid_request_error"}}
            return stub.by_schema_name(body)

        stub.reply = refuse_first
        agent = triage_agent(model_settings=_openai_settings(stub.base_url))
        worker_start(env=KEY_ENV)
        task = task_submit(agent_name=agent.name, input=BILLING_TICKET)
        done = wait_until(lambda: (t := Task.objects.get(pk=task.pk)).state in FINAL and t, timeout=30,
                          what="the task to finish")

    assert done.state == "verified"
    assert done.retry_count == 1
    assert done.last_error.startswith("LLMError: gpt-4o-mini: AuthenticationError")
    assert transitions_of(done) == [("queued", "assigned"), ("assigned", "retrying"), ("retrying", "acked"),
                                    ("acked", "in_progress"), ("in_progress", "completed"), ("completed", "verified")]
    assert steps_of(done) == [("classify", "record"), ("send_reply", "allow")]
    assert len(stub.requests) == 2
