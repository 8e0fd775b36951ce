"""Celery entry points: thin, tenant-scoped, safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task as CeleryTask
from celery import shared_task
from celery.exceptions import Reject
from celery.signals import task_prerun

from config.connection import connection
from tenants.models import Tenant, TenantStatus

logger = logging.getLogger(__name__)


# Schemas of customer tenants seen by this worker process. A schema is only added after the
# public tenants table confirmed it; tenants are not renamed, so a hit needs no query. (The
# engine reads the tenant's status afresh at every step.)
_known_schemas: set[str] = set()


def _tenant_schema_known(schema: str) -> bool:
    if schema in _known_schemas:
        return True
    connection.set_schema_to_public()
    found = (
        Tenant.objects.filter(schema_name=schema)
        .exclude(status=TenantStatus.SPARE)
        .exclude(schema_name="public")
        .exists()
    )
    if found:
        _known_schemas.add(schema)
    return found


class TenantTask(CeleryTask):
    """Every message names its tenant's schema; the task runs with that schema active. A
    message without one (or for an unknown or spare schema) is refused, logged and not
    retried: running it in the public schema could touch the wrong data."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        schema = kwargs.get("schema")
        if not isinstance(schema, str) or not schema:
            logger.error("task.refused", extra={"task_name": self.name, "why": "no schema in the message"})
            raise Reject("message without a schema name", requeue=False)
        if not _tenant_schema_known(schema):
            logger.error("task.refused", extra={"task_name": self.name, "why": f"unknown schema {schema!r}"})
            raise Reject(f"unknown schema {schema!r}", requeue=False)
        if connection.schema_name != schema:
            connection.set_schema(schema)
        try:
            return super().__call__(*args, **kwargs)
        except Exception:
            connection.set_schema_to_public()
            raise


@task_prerun.connect(dispatch_uid="agents.public_schema_by_default")
def _public_schema_by_default(sender: Any = None, task: Any = None, **kwargs: Any) -> None:
    # A Celery hook, not business logic: a tenant task leaves its schema active for the next
    # message of the same tenant (one SET search_path fewer per step); every other task
    # starts in the public schema and must choose a tenant explicitly.
    if not isinstance(task, TenantTask):
        connection.set_schema_to_public()


@shared_task(base=TenantTask, name="agents.advance_task", acks_late=True, ignore_result=True)
def advance_task(*, schema: str, task_id: int, attempt: int) -> str:
    from agents.engine import advance

    # The plain value: it is what the worker logs ("succeeded in 0.01s: 'stepped'").
    return advance(task_id=task_id, attempt=attempt).value


@shared_task(base=TenantTask, name="agents.resend_held_tasks", acks_late=True, ignore_result=True)
def resend_held_tasks(*, schema: str) -> int:
    """After a tenant is resumed: its tasks continue from where they stopped."""
    from agents.services import tasks_resend_held

    return tasks_resend_held()


@shared_task(name="agents.sweep_ack_deadlines", ignore_result=True)
def sweep_ack_deadlines() -> int:
    """Beat: for every active tenant, re-send (as a retry) tasks whose ack deadline passed,
    or escalate them once their retries are spent; re-send held tasks that may run again."""
    from agents.lease import task_fail
    from agents.selectors import tasks_overdue
    from agents.services import tasks_resend_held

    swept = 0
    tenants = list(Tenant.objects.filter(status=TenantStatus.ACTIVE).exclude(schema_name="public"))
    for tenant in tenants:
        connection.set_tenant(tenant)
        try:
            for task_id, attempt in tasks_overdue():
                task_fail(task_id=task_id, attempt=attempt, error="ack deadline missed")
                swept += 1
            # Held tasks whose tenant and agent are active again (should the resume's own
            # re-send have been lost).
            swept += tasks_resend_held()
        except Exception:  # one broken tenant must not stop the sweep of the others
            logger.exception("sweep.failed", extra={"schema": tenant.schema_name})
        finally:
            connection.set_schema_to_public()
    return swept


@shared_task(base=TenantTask, name="agents.relay_deliver", acks_late=True, ignore_result=True)
def relay_deliver(*, schema: str, task_id: int) -> int:
    """Deliver a task's outbox messages in order (agents.integrations.relay)."""
    from agents.integrations.relay import relay_deliver_task

    return relay_deliver_task(task_id=task_id)


@shared_task(base=TenantTask, name="agents.relay_drain", acks_late=True, ignore_result=True)
def relay_drain(*, schema: str) -> int:
    """Deliver the tenant's due outbox messages in batches until none is due (or a minute
    passed: the next sweep goes on)."""
    from agents.integrations.relay import relay_drain as drain

    return drain(seconds=60.0)


@shared_task(name="agents.relay_sweep", ignore_result=True)
def relay_sweep() -> int:
    """Beat: for every active tenant with an outbox message due (a lost message, a retry whose
    countdown message died with its worker, a relay killed mid-batch), send one
    ``agents.relay_drain``."""
    from agents.integrations.relay import relay_drain_send, relay_due

    sent = 0
    for tenant in list(Tenant.objects.filter(status=TenantStatus.ACTIVE).exclude(schema_name="public")):
        connection.set_tenant(tenant)
        try:
            if relay_due(limit=1):
                relay_drain_send()
                sent += 1
        except Exception:  # one broken tenant must not stop the sweep of the others
            logger.exception("relay.sweep_failed", extra={"schema": tenant.schema_name})
        finally:
            connection.set_schema_to_public()
    return sent
