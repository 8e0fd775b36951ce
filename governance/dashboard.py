"""The governance dashboard's figures: what the tenant admin's index page shows and
``GET /api/v1/governance/dashboard/`` returns, narrowed to what the user may see.

Governance sits below the apps it reports on, so their models are reached by label (as
``governance.access`` does), never imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.db.models import Count, Q
from django.utils import timezone

from config.connection import connection
from governance import live
from governance.access import Capability, scoped
from governance.audit_query import audit_filter_parse, audit_visible

IN_FLIGHT = ("assigned", "acked", "in_progress", "retrying")
FINISHED = ("completed", "verified", "escalated", "cancelled")
FAILED = ("escalated",)
OPEN_APPROVALS = ("pending", "assigned", "escalated")
ERROR_WINDOW = timedelta(hours=24)
LATEST_AUDIT = 10
LATEST_APPROVALS = 10


@dataclass(frozen=True)
class AgentErrors:
    agent_id: int
    agent: str
    finished: int
    failed: int
    error_rate: float  # failed / finished over the window; 0 when nothing finished


@dataclass(frozen=True)
class PendingApproval:
    id: int
    task_id: int
    agent_id: int
    agent: str
    tool: str
    required_role: str
    due_at: str | None
    breached: bool


@dataclass(frozen=True)
class AuditLine:
    seq: int
    created_at: str
    actor: str
    verb: str
    target: str


@dataclass(frozen=True)
class UsageLine:
    limit: str  # the limit's name, as in tenants.tiers.Limits
    label: str
    used: int | None  # None: not counted (yet); the limit is shown alone
    max: int
    near: bool  # used reaches NEAR_LIMIT of max


# How far into a limit the dashboard marks it as near.
NEAR_LIMIT = 0.8
USAGE_LABELS: dict[str, str] = {
    "max_agents": "Agents",
    "runs_per_day": "Runs today (UTC)",
    "max_pending_approvals": "Pending approvals",
    "tokens_per_month": "Tokens this month",
    "requests_per_minute": "API requests per minute",
    "max_concurrent_tasks": "Tasks in flight",
}
# Counters of current usage per limit name, in the connection's current tenant. The dashboard
# counts what it can read itself (below); a metering module registers the rest at startup, e.g.
# ``usage_counter_register(limit="tokens_per_month", counter=...)``; a limit without a counter is
# shown with its maximum only.
_usage_counters: dict[str, Callable[[], int]] = {}


def usage_counter_register(*, limit: str, counter: Callable[[], int]) -> None:
    """Let the dashboard show ``counter()`` as the current usage of ``limit``."""
    from tenants.tiers import LIMIT_NAMES  # at call time, like the models below

    if limit not in LIMIT_NAMES:
        raise ValueError(f"unknown limit {limit!r}; known limits: {', '.join(LIMIT_NAMES)}")
    _usage_counters[limit] = counter


def _agents_count() -> int:
    return int(apps.get_model("agents", "Agent").objects.count())


def _runs_today() -> int:
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return int(apps.get_model("agents", "Task").objects.filter(created_at__gte=midnight).count())


def _in_flight() -> int:
    return int(apps.get_model("agents", "Task").objects.filter(state__in=IN_FLIGHT).count())


def _pending_approvals() -> int:
    return int(apps.get_model("hitl", "ApprovalRequest").objects.filter(status__in=OPEN_APPROVALS).count())


_BUILT_IN_COUNTERS: dict[str, Callable[[], int]] = {
    "max_agents": _agents_count,
    "runs_per_day": _runs_today,
    "max_pending_approvals": _pending_approvals,
    "max_concurrent_tasks": _in_flight,
}


def usage_get() -> list[UsageLine]:
    """The current tenant's limits (its tier's, with its overrides) and, where counted, how
    much of each is used. The tenant's figures, not narrowed to an agent scope: limits apply to
    the tenant as a whole."""
    from tenants.selectors import tenant_limits  # at call time, like the models above

    tenant = getattr(connection, "tenant", None)
    if tenant is None or connection.schema_name == "public":
        return []
    lines = []
    for name, maximum in tenant_limits(tenant=tenant).as_dict().items():
        counter = _usage_counters.get(name) or _BUILT_IN_COUNTERS.get(name)
        used = counter() if counter is not None else None
        lines.append(
            UsageLine(
                limit=name,
                label=USAGE_LABELS.get(name, name),
                used=used,
                max=maximum,
                near=used is not None and maximum > 0 and used >= maximum * NEAR_LIMIT,
            )
        )
    return lines


@dataclass(frozen=True)
class Dashboard:
    seq: int  # the live stream's number these figures are at least as new as
    in_flight: int
    tasks_by_state: dict[str, int]
    pending_approvals: int
    sla_breaches: int
    approvals: list[PendingApproval]
    error_rates: list[AgentErrors]
    audit: list[AuditLine]
    usage: list[UsageLine]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def dashboard_get(*, user: Any) -> Dashboard:
    """The figures ``user`` may see, in the connection's current tenant."""
    # Read the number first: an event after it may be newer than a figure, never older.
    seq = live.sequence_current(schema=connection.schema_name)
    task_model = apps.get_model("agents", "Task")
    approval_model = apps.get_model("hitl", "ApprovalRequest")
    tasks = scoped(user, Capability.VIEW, task_model.objects.all())
    by_state = {
        row["state"]: row["n"] for row in tasks.order_by().values("state").annotate(n=Count("id")).order_by("state")
    }
    since = timezone.now() - ERROR_WINDOW
    per_agent = (
        tasks.filter(finished_at__gte=since, state__in=FINISHED)
        .order_by()
        .values("agent_id", "agent__name")
        .annotate(finished=Count("id"), failed=Count("id", filter=Q(state__in=FAILED)))
        .order_by("agent__name")
    )
    error_rates = [
        AgentErrors(
            agent_id=row["agent_id"],
            agent=row["agent__name"],
            finished=row["finished"],
            failed=row["failed"],
            error_rate=round(row["failed"] / row["finished"], 4) if row["finished"] else 0.0,
        )
        for row in per_agent
    ]
    pending = scoped(user, Capability.VIEW, approval_model.objects.filter(status__in=OPEN_APPROVALS))
    counts = pending.aggregate(n=Count("id"), breached=Count("id", filter=Q(breached_at__isnull=False)))
    approvals = [
        PendingApproval(
            id=row.pk,
            task_id=row.task_id,
            agent_id=row.task.agent_id,
            agent=row.task.agent.name,
            tool=row.tool,
            required_role=row.required_role,
            due_at=_iso(row.due_at),
            breached=row.breached_at is not None,
        )
        for row in pending.select_related("task__agent").order_by("due_at", "id")[:LATEST_APPROVALS]
    ]
    # The events the user may read in the audit API (governance.audit_query.audit_visible).
    visible = scoped(user, Capability.VIEW, audit_visible(user, audit_filter_parse({})).queryset())
    audit = [
        AuditLine(
            seq=row.seq,
            created_at=row.created_at.isoformat(),
            actor=row.actor_label,
            verb=row.verb,
            target=f"{row.target_type} {row.target_id}".strip(),
        )
        for row in visible.order_by("-seq")[:LATEST_AUDIT]
    ]
    return Dashboard(
        seq=seq,
        in_flight=sum(by_state.get(state, 0) for state in IN_FLIGHT),
        tasks_by_state=by_state,
        pending_approvals=counts["n"],
        sla_breaches=counts["breached"],
        approvals=approvals,
        error_rates=error_rates,
        audit=audit,
        usage=usage_get(),
    )
