"""Tier limits, enforced (tenants.tiers holds the numbers): the agents a tenant may have, the runs
it may submit per day (UTC), the LLM tokens per month, its pending approvals, and how many of
its tasks may be in flight at once.

A refusal is ``LimitExceeded``: ``{"code": "limit_exceeded", "detail", "extra": {"limit",
"max", "used"}}``, 403 for a limit on how much a tenant may hold (agents, pending approvals),
429 for one that a new period resets (runs per day, tokens per month).

Every check runs after its transaction's audit append, under the tenant's audit lock: that lock
already serializes the tenant's writers, so the count a check reads cannot change before the
transaction ends, and two concurrent requests cannot both take the last unit. A refused change
rolls back whole.

**Fair scheduling.** Tasks in flight are those with a lease (a message sent, or a step
running): ``ack_deadline`` is set exactly then. A task submitted while its tenant has
``max_concurrent_tasks`` in flight is not sent: it stays ``queued`` and waits, in priority and
then submission order, until one of the tenant's tasks leaves flight (finishes, escalates,
waits for a decision) and the finishing transaction admits it, or until beat's sweep does
(``tasks_admit``). A task that goes back to the workers passes the same admission: one retried
by a human is queued again; one resumed after a decision, or held while its agent was paused
or its tenant suspended, waits *held* at its step boundary (runnable, no lease). Held tasks
are admitted before queued ones (they have started: finishing them frees their slot for
good), each kind in priority and then submission order: however many decisions land at
once, the tenant keeps to its share. So a tenant never has more than its share of messages in
the shared ``steps`` queue, and another tenant's step waits behind at most that many of its
messages, not behind its whole backlog. Admission costs nothing on a step: two indexed EXISTS
when a task leaves flight, more only when tasks are waiting.

**Tokens per month** are counted from the provider's answer (the offline provider estimates
them, see agents.llm) by the step statement; the limit is checked when a task is submitted and
whenever its first step is attempted, the retries of that step included (a task over it
escalates with the limit named), not at later steps: a started task finishes, so the overrun
is bounded by the tasks in flight.

**Agents**: enabled ones count against ``max_agents``; a paused agent runs nothing and does
not, and resuming one is checked like creating one.

**Pending approvals**: a gate that would open one beyond the limit does not wait (nobody could
decide it in time); the task escalates with the limit named, and a human can retry it once the
queue is worked down.

**Near a limit**: when a check finds usage at NEAR_LIMIT of a limit, a live event
``usage.near_limit`` with ``{limit, used, max}`` is published once per period (day, month, or
for the stock limits once a day), deduplicated in Redis after commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from agents.events import publish
from agents.lease import dispatch, lease_deadline, lease_renew
from agents.models import Agent, AgentStatus, Task
from agents.models import TaskState as S
from agents.states import task_transition
from config.connection import connection
from config.errors import VigilError
from governance.actors import Actor
from governance.services import AUDIT_LOCK_CLASS
from tenants.models import Tenant
from tenants.selectors import tenant_limits
from tenants.tiers import Limits
from tenants.usage import month_start, runs_on, tokens_in_month, usage_count, usage_day

logger = logging.getLogger(__name__)

NEAR_LIMIT = 0.8
IN_FLIGHT = (S.ASSIGNED, S.ACKED, S.IN_PROGRESS, S.RETRYING)


class LimitExceeded(VigilError):
    code = "limit_exceeded"
    status = 429

    def __init__(self, detail: str, *, limit: str, maximum: int, used: int, status: int = 429) -> None:
        super().__init__(detail, limit=limit, max=maximum, used=used)
        self.status = status


def current_tenant() -> Tenant:
    """The tenant of the connection's schema, read afresh unless the request resolved it."""
    tenant = getattr(connection, "tenant", None)
    if isinstance(tenant, Tenant) and tenant.pk and tenant.schema_name == connection.schema_name:
        return tenant
    return Tenant.objects.get(schema_name=connection.schema_name)


def current_limits() -> tuple[Tenant, Limits]:
    tenant = current_tenant()
    return tenant, tenant_limits(tenant=tenant)


def model_key(model_settings: dict[str, Any]) -> str:
    """The model an agent's usage is counted (and priced) under."""
    model = model_settings.get("model") if "connection" in model_settings else None
    return str(model)[:100] if model else "offline"


# ------------------------------------------------------------------------- near a limit
@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _period(limit: str, now: datetime) -> tuple[str, int]:
    """The period a near-limit event is published once in, and its seconds left (at least 1)."""
    day = usage_day(now)
    if limit == "tokens_per_month":
        nxt = (month_start(day) + timedelta(days=32)).replace(day=1)
        key = f"{day:%Y-%m}"
    else:
        nxt, key = day + timedelta(days=1), day.isoformat()
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=now.tzinfo)
    return key, max(1, int((end - now).total_seconds()))


def near_limit_check(*, limit: str, used: int, maximum: int) -> None:
    """Publish ``usage.near_limit`` after commit when ``used`` reaches NEAR_LIMIT of
    ``maximum``, once per period and tenant (every process shares the mark in Redis)."""
    if maximum <= 0 or used < maximum * NEAR_LIMIT:
        return
    schema = connection.schema_name
    now = timezone.now()
    period, ttl = _period(limit, now)
    database = connection.settings_dict["NAME"]
    key = f"vigil:usage:near:{database}:{schema}:{limit}:{period}"

    def mark_and_publish() -> None:
        try:
            first = _client(settings.REDIS_URL).set(key, 1, nx=True, ex=ttl)
        except redis.RedisError as exc:  # a missed notice is better than a failed request
            logger.warning("usage.near_limit_unmarked", extra={"limit": limit, "error": str(exc)[:200]})
            return
        if first:
            publish("usage.near_limit", limit=limit, used=used, max=maximum)

    transaction.on_commit(mark_and_publish)


# ------------------------------------------------------------------------- stock limits
def agents_limit_check() -> None:
    """After an agent was created or resumed, under the audit lock: refuse it if the tenant now
    has more enabled agents than max_agents allows. Paused agents do not count: they run
    nothing, and resuming one is checked here too."""
    _, limits = current_limits()
    count = Agent.objects.filter(status=AgentStatus.ENABLED).count()
    if count > limits.max_agents:
        raise LimitExceeded(
            f"the tenant may have at most {limits.max_agents} enabled agents (limit max_agents)",
            limit="max_agents",
            maximum=limits.max_agents,
            used=count - 1,
            status=403,
        )
    near_limit_check(limit="max_agents", used=count, maximum=limits.max_agents)


def pending_approvals_exceeded() -> LimitExceeded | None:
    """At a gate, before its request is opened: the refusal if one more pending approval would
    pass the limit (tasks awaiting approval are the pending requests, one each). Takes the
    audit lock (if the transaction does not hold it yet), so the count stays true until commit."""
    audit_lock()
    _, limits = current_limits()
    pending = Task.objects.filter(state=S.AWAITING_APPROVAL).count()
    if pending + 1 > limits.max_pending_approvals:
        return LimitExceeded(
            f"the tenant has {pending} pending approvals, the most it may have "
            f"(limit max_pending_approvals {limits.max_pending_approvals})",
            limit="max_pending_approvals",
            maximum=limits.max_pending_approvals,
            used=pending,
            status=403,
        )
    near_limit_check(limit="max_pending_approvals", used=pending + 1, maximum=limits.max_pending_approvals)
    return None


# ------------------------------------------------------------------------- period limits
def tokens_exceeded(*, tenant: Tenant, limits: Limits, now: datetime | None = None) -> LimitExceeded | None:
    used = tokens_in_month(tenant_id=tenant.pk, day=usage_day(now))
    near_limit_check(limit="tokens_per_month", used=used, maximum=limits.tokens_per_month)
    if used >= limits.tokens_per_month:
        return LimitExceeded(
            f"the tenant used {used:,} of its {limits.tokens_per_month:,} LLM tokens this month "
            "(limit tokens_per_month)",
            limit="tokens_per_month",
            maximum=limits.tokens_per_month,
            used=used,
        )
    return None


def tokens_exceeded_at_start() -> LimitExceeded | None:
    """When a task starts: the refusal if its tenant used its tokens of the month."""
    tenant, limits = current_limits()
    return tokens_exceeded(tenant=tenant, limits=limits)


def run_count(*, model: str) -> Tenant:
    """In a submit's transaction, after its audit append: count the run, refuse it past the
    day's runs or the month's tokens. Returns the tenant."""
    tenant, limits = current_limits()
    now = timezone.now()
    refused = tokens_exceeded(tenant=tenant, limits=limits, now=now)
    if refused is not None:
        raise refused
    usage_count(model=model, runs=1, now=now)
    runs = runs_on(tenant_id=tenant.pk, day=usage_day(now))
    if runs > limits.runs_per_day:
        raise LimitExceeded(
            f"the tenant submitted its {limits.runs_per_day:,} runs of today (UTC) (limit runs_per_day)",
            limit="runs_per_day",
            maximum=limits.runs_per_day,
            used=runs - 1,
        )
    near_limit_check(limit="runs_per_day", used=runs, maximum=limits.runs_per_day)
    return tenant


def approval_count(*, model: str) -> None:
    usage_count(model=model, approvals=1)


# ------------------------------------------------------------------------- admission
def audit_lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", [AUDIT_LOCK_CLASS])


def in_flight(*, up_to: int) -> int:
    """Tasks of the current schema with a lease, counted up to ``up_to``."""
    return Task.objects.filter(state__in=IN_FLIGHT, ack_deadline__isnull=False).values("pk")[:up_to].count()


def admission_free(*, limits: Limits) -> int:
    """Slots free for another task to go in flight. The caller holds the audit lock."""
    return max(0, limits.max_concurrent_tasks - in_flight(up_to=limits.max_concurrent_tasks))


def lease_first(task: Task, *, actor: Actor) -> None:
    """Send a queued (or just created) task to the workers: its first lease and message."""
    task.attempt += 1
    task.ack_deadline = lease_deadline()
    task_transition(task=task, to=S.ASSIGNED, actor=actor, reason="sent to the workers", save=False)
    task.save()
    dispatch(task_id=task.pk, attempt=task.attempt)


# Tasks held at a step boundary (runnable, no lease) whose agent may run: they wait for a slot
# (resumed after a decision, or their agent or tenant was stopped and is back).
HELD = Q(state__in=IN_FLIGHT, ack_deadline__isnull=True, agent__status=AgentStatus.ENABLED)
QUEUED = Q(state=S.QUEUED, agent__status=AgentStatus.ENABLED)


def _waiting_before(task: Task) -> QuerySet[Task]:
    """The tasks that ``tasks_admit`` would send before ``task``: held tasks first, then queued
    ones, each by priority and then age (a queued task goes after the others of its priority)."""
    if task.state == S.QUEUED:
        return Task.objects.filter(HELD | (QUEUED & Q(priority__gte=task.priority))).exclude(pk=task.pk)
    before = Q(priority__gt=task.priority) | Q(priority=task.priority, pk__lt=task.pk)
    return Task.objects.filter(HELD & before).exclude(pk=task.pk)


def tasks_admit(*, tenant: Tenant | None = None, lock: bool = True) -> int:
    """Send the current schema's waiting tasks to the workers while its tenant has slots free:
    held ones first, then queued ones, each highest priority first, then oldest. Inside the
    caller's transaction, which (``lock``) takes the tenant's audit lock first unless it holds
    it already. Returns how many went."""
    # Cheap first: nothing queued and nothing held (the in-flight tasks are few) costs two
    # indexed EXISTS.
    if not Task.objects.filter(state=S.QUEUED).exists() and not Task.objects.filter(HELD).exists():
        return 0
    tenant = tenant or current_tenant()
    if tenant.status != "active":
        return 0
    if lock:
        audit_lock()
    free = admission_free(limits=tenant_limits(tenant=tenant))
    sent = 0
    # Rows another transaction holds are skipped: it is changing them (cancelling one, say).
    locked = Task.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
    if free:
        for task in locked.filter(HELD).order_by("-priority", "pk")[:free]:
            lease_renew(task)
            sent += 1
    if free > sent:
        actor = Actor.system("scheduler")
        for task in locked.filter(QUEUED).order_by("-priority", "pk")[: free - sent]:
            lease_first(task, actor=actor)
            sent += 1
    return sent


def may_go_now(task: Task, *, tenant: Tenant | None = None) -> bool:
    """Under the audit lock, for a task that is to go (back) to the workers: whether it may go
    now, its tenant having a slot free and no task waiting before it (``tasks_admit``'s order)."""
    limits = tenant_limits(tenant=tenant or current_tenant())
    return admission_free(limits=limits) > 0 and not _waiting_before(task).exists()


def task_admit_or_wait(task: Task, *, actor: Actor, tenant: Tenant | None = None) -> bool:
    """Under the audit lock, for a locked task that is to go (back) to the workers, new or
    retried (queued): send it now if its tenant has a slot free and no task waits before it
    (``tasks_admit``'s order), else it waits and goes in its turn. True if sent."""
    tenant = tenant or current_tenant()
    if not admission_free(limits=tenant_limits(tenant=tenant)):
        return False
    if not _waiting_before(task).exists():
        lease_first(task, actor=actor)
        return True
    return task_admit_in_turn(task, tenant=tenant)


def task_admit_in_turn(task: Task, *, tenant: Tenant | None = None) -> bool:
    """For a task left waiting (queued or held) although a slot may be free, because tasks wait
    before it (another transaction held their rows when it admitted, or their agent was enabled
    since): fill the free slots in order, this task perhaps among them. True if it went."""
    if not tasks_admit(tenant=tenant, lock=False):
        return False
    task.refresh_from_db(fields=["state", "attempt", "ack_deadline", "updated_at"])
    return task.ack_deadline is not None


def near_limit_forget(*, schema: str) -> None:
    """Forget which near-limit notices ``schema`` was sent (every period): the next check
    notices afresh. For tests and for an operator who raised a tenant's limits."""
    database = connection.settings_dict["NAME"]
    client = _client(settings.REDIS_URL)
    keys = list(client.scan_iter(f"vigil:usage:near:{database}:{schema}:*"))
    if keys:
        client.delete(*keys)
