"""The ``hitl.sla_metrics`` tool (level 1, read only) that the ``monitor`` blueprint calls:
service-level figures over the tenant's tasks and approval requests, per agent.

Four families, each one aggregate query, run in parallel on their own connections (the
tenant's schema set on each): how long reviewers take to decide (response), how long tasks
take from submission to their end (resolution), the share of requests that breached their SLA
(breach rate) and what is waiting now (backlog). The tool lives here because the figures read
approval requests; agents names it without importing hitl (as the support blueprint names
``knowledge.search``)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from agents.models import PrivilegeLevel, TaskState
from agents.tools import ToolResult, ToolSpec, register
from config.connection import connection
from hitl.models import OPEN_STATUSES

SLA_METRICS_TOOL = "hitl.sla_metrics"
FAMILIES = ("response", "resolution", "breach", "backlog")
MAX_WINDOW_HOURS = 24 * 90
TERMINAL = (TaskState.COMPLETED, TaskState.VERIFIED, TaskState.ESCALATED, TaskState.CANCELLED)

Rows = list[tuple[Any, ...]]


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


def _response(since: Any) -> dict[int, dict[str, Any]]:
    rows = _fetch(
        """
        SELECT t.agent_id, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.decided_at - a.created_at)),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.decided_at - a.created_at))
          FROM hitl_approvalrequest a JOIN agents_task t ON t.id = a.task_id
         WHERE a.decided_at >= %s
         GROUP BY t.agent_id
        """,
        [since],
    )
    return {
        agent: {"decided": count, "response_p50_s": _seconds(p50), "response_p95_s": _seconds(p95)}
        for agent, count, p50, p95 in rows
    }


def _resolution(since: Any) -> dict[int, dict[str, Any]]:
    rows = _fetch(
        """
        SELECT agent_id, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
          FROM agents_task
         WHERE finished_at >= %s AND state = ANY(%s)
         GROUP BY agent_id
        """,
        [since, [str(state) for state in TERMINAL if state != TaskState.CANCELLED]],
    )
    return {
        agent: {"resolved": count, "resolution_p50_s": _seconds(p50), "resolution_p95_s": _seconds(p95)}
        for agent, count, p50, p95 in rows
    }


def _breach(since: Any) -> dict[int, dict[str, Any]]:
    rows = _fetch(
        """
        SELECT t.agent_id, count(*), count(*) FILTER (WHERE a.breached_at IS NOT NULL)
          FROM hitl_approvalrequest a JOIN agents_task t ON t.id = a.task_id
         WHERE a.created_at >= %s
         GROUP BY t.agent_id
        """,
        [since],
    )
    return {
        agent: {"requests": total, "breached": breached, "breach_rate": round(breached / total, 4)}
        for agent, total, breached in rows
    }


def _backlog(since: Any) -> dict[int, dict[str, Any]]:
    del since  # what waits now, whenever it started waiting
    tasks = _fetch(
        "SELECT agent_id, count(*) FROM agents_task WHERE NOT (state = ANY(%s)) GROUP BY agent_id",
        [[str(state) for state in TERMINAL]],
    )
    approvals = _fetch(
        """
        SELECT t.agent_id, count(*)
          FROM hitl_approvalrequest a JOIN agents_task t ON t.id = a.task_id
         WHERE a.status = ANY(%s)
         GROUP BY t.agent_id
        """,
        [[str(status) for status in OPEN_STATUSES]],
    )
    found: dict[int, dict[str, Any]] = {}
    for agent, count in tasks:
        found.setdefault(agent, {"backlog_tasks": 0, "backlog_approvals": 0})["backlog_tasks"] = count
    for agent, count in approvals:
        found.setdefault(agent, {"backlog_tasks": 0, "backlog_approvals": 0})["backlog_approvals"] = count
    return found


def _fetch(sql: str, params: list[Any]) -> Rows:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def _in_schema(
    tenant: Any, family: Callable[[Any], dict[int, dict[str, Any]]], since: Any
) -> dict[int, dict[str, Any]]:
    """Run one family on this thread's own connection, in the caller's tenant schema."""
    try:
        connection.set_tenant(tenant)
        return family(since)
    finally:
        connections.close_all()


def sla_metrics(*, window_hours: int) -> dict[str, Any]:
    """Per agent (by name) and in total, the four families over the last ``window_hours``."""
    since = timezone.now() - timedelta(hours=window_hours)
    tenant = connection.tenant
    runners: dict[str, Callable[[Any], dict[int, dict[str, Any]]]] = {
        "response": _response,
        "resolution": _resolution,
        "breach": _breach,
        "backlog": _backlog,
    }
    if connection.in_atomic_block:
        # Other connections would not see this transaction's own writes: run them here, in turn.
        results = {name: run(since) for name, run in runners.items()}
    else:
        with ThreadPoolExecutor(max_workers=len(runners), thread_name_prefix="sla-metrics") as pool:
            futures = {name: pool.submit(_in_schema, tenant, run, since) for name, run in runners.items()}
            results = {name: future.result() for name, future in futures.items()}
    names: dict[int, str] = dict(_fetch("SELECT id, name FROM agents_agent", []))
    per_agent: dict[str, dict[str, Any]] = {}
    for family in FAMILIES:
        for agent_id, figures in results[family].items():
            per_agent.setdefault(names.get(agent_id, str(agent_id)), {}).update(figures)
    requests = sum(f.get("requests", 0) for f in results["breach"].values())
    breached = sum(f.get("breached", 0) for f in results["breach"].values())
    totals = {
        "resolved": sum(f["resolved"] for f in results["resolution"].values()),
        "decided": sum(f["decided"] for f in results["response"].values()),
        "requests": requests,
        "breached": breached,
        "breach_rate": round(breached / requests, 4) if requests else 0.0,
        "backlog_tasks": sum(f["backlog_tasks"] for f in results["backlog"].values()),
        "backlog_approvals": sum(f["backlog_approvals"] for f in results["backlog"].values()),
    }
    return {
        "window_hours": window_hours,
        "since": since.isoformat(),
        "agents": dict(sorted(per_agent.items())),
        "totals": totals,
    }


def _run(args: dict[str, Any]) -> ToolResult:
    return ToolResult(sla_metrics(window_hours=int(args.get("window_hours", 24))))


def sla_metrics_tool_register() -> None:
    register(
        ToolSpec(
            name=SLA_METRICS_TOOL,
            description="Service-level figures per agent: response, resolution, SLA breach rate, backlog.",
            level=PrivilegeLevel.READ_ONLY,
            has_side_effect=False,
            run=_run,
            args_schema={
                "type": "object",
                "additionalProperties": False,
                "properties": {"window_hours": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_HOURS}},
            },
        )
    )
