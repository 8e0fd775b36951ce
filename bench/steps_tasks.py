"""Bench-only Celery tasks, blueprints and profiling hooks for ``bench/steps.py``.

Imported by the benchmark process and by the worker it starts (``celery worker --include
bench.steps_tasks``). Nothing here patches production code: it registers two extra
blueprints in ``agents.blueprints.BLUEPRINTS`` and two plain Celery tasks.

* ``bench.noop``: the bare-Celery baseline. Increments a Redis counter and, at the last
  expected message, stores the completion time.
* ``bench.noop_chain``: a no-op that sends the next link of its chain itself (the same shape
  as a governed step sending its next message), recording when each link ran.
* blueprint ``bench_loop``: one safe tool call (``send_reply``: effect + outbox + step +
  audit) per step, ``steps`` times, then finish.
* blueprint ``bench_approval``: one risky tool call (``issue_refund``) that waits for a
  reviewer, then finish once it ran.

With ``BENCH_STEPS_PROFILE=<dir>`` in a worker's environment every pool child profiles the
tasks it runs (cProfile, from task_prerun to task_postrun) and writes
``<dir>/child-<pid>.prof`` about once a second, after a task, and when it exits.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import shared_task, signals
from django.conf import settings

from agents.blueprints import BLUEPRINTS, BaseAgent, Decision, StepContext

_redis: redis.Redis | None = None


def broker() -> redis.Redis:
    """A client on the broker's Redis database (the bench's own index)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    return _redis


# ------------------------------------------------------------------------------- no-op tasks


@shared_task(name="bench.noop", ignore_result=True)
def noop(*, key: str, total: int) -> None:
    if broker().incr(key) == total:
        broker().set(f"{key}:done", repr(time.time()))


@shared_task(name="bench.noop_chain", ignore_result=True)
def noop_chain(*, key: str, index: int, total: int, grand: int = 0) -> None:
    """Link ``index`` of a chain of ``total``. With ``grand`` (the links of all chains of a
    run) count into ``key`` and mark completion; without, append when this link ran."""
    if grand:
        if broker().incr(key) == grand:
            broker().set(f"{key}:done", repr(time.time()))
    else:
        broker().rpush(key, repr(time.time()))
    if index + 1 < total:
        noop_chain.apply_async(kwargs={"key": key, "index": index + 1, "total": total, "grand": grand}, queue="steps")


# ------------------------------------------------------------------------------- blueprints

ANY_OBJECT: dict[str, Any] = {"type": "object"}


class BenchLoopAgent(BaseAgent):
    name = "bench_loop"
    description = "Benchmark only: one send_reply (a safe, side-effecting tool) per step, `steps` times."
    default_config = {"steps": 10, "max_iterations": 10_000}
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "max_iterations": {"type": "integer", "minimum": 1},
        },
    }
    input_schema = ANY_OBJECT
    output_schema = {"type": "object", "required": ["steps"], "properties": {"steps": {"type": "integer"}}}
    tools = ("send_reply",)

    def plan(self, ctx: StepContext) -> Decision:
        done = ctx.count
        if done < int(self.config["steps"]):
            return Decision.tool(
                "send_reply",
                {
                    "to": "bench@example.com",
                    "subject": f"bench step {done}",
                    "body": f"Reply number {done} of a benchmark task.",
                },
                reasoning="benchmark step",
            )
        return Decision.finish({"steps": done})


class BenchApprovalAgent(BaseAgent):
    name = "bench_approval"
    description = "Benchmark only: one refund that waits for a reviewer, then finish."
    default_config = {"max_iterations": 5}
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"max_iterations": {"type": "integer", "minimum": 1}},
    }
    input_schema = ANY_OBJECT
    output_schema = {"type": "object", "required": ["refunded"], "properties": {"refunded": {"type": "boolean"}}}
    tools = ("issue_refund",)

    def plan(self, ctx: StepContext) -> Decision:
        refund = ctx.step("issue_refund")
        if refund is None:
            return Decision.tool(
                "issue_refund",
                {"order_id": f"B-{ctx.task_input.get('n', 0)}", "amount": 10.0, "currency": "EUR"},
                reasoning="benchmark refund",
            )
        return Decision.finish({"refunded": refund.decision == "approved"})


for _cls in (BenchLoopAgent, BenchApprovalAgent):
    BLUEPRINTS.setdefault(_cls.name, _cls)


# ------------------------------------------------------------------------------- profiling

_PROFILE_DIR = os.environ.get("BENCH_STEPS_PROFILE", "")
_profiler: Any = None
_last_dump = 0.0


def _profile_dump() -> None:
    global _last_dump
    if _profiler is not None:
        _profiler.dump_stats(os.path.join(_PROFILE_DIR, f"child-{os.getpid()}.prof"))
        _last_dump = time.monotonic()


if _PROFILE_DIR:
    # Only the execution of each task is profiled (task_prerun -> task_postrun), not the
    # child's idle wait for the next one.
    @signals.worker_process_init.connect(weak=False)
    def _profile_start(**_: Any) -> None:
        import cProfile

        global _profiler
        _profiler = cProfile.Profile()

    @signals.task_prerun.connect(weak=False)
    def _profile_on(**_: Any) -> None:
        if _profiler is not None:
            _profiler.enable()

    @signals.task_postrun.connect(weak=False)
    def _profile_off(**_: Any) -> None:
        if _profiler is not None:
            _profiler.disable()
            if time.monotonic() - _last_dump > 1.0:
                _profile_dump()

    @signals.worker_process_shutdown.connect(weak=False)
    def _profile_stop(**_: Any) -> None:
        _profile_dump()
