"""Celery entry points: thin, tenant-scoped, safe to run twice."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task as CeleryTask
from celery import shared_task
from celery.exceptions import Reject
from django.db import connection

from tenants.models import Tenant, TenantStatus

logger = logging.getLogger(__name__)


class TenantTask(CeleryTask):
    """Every message names its tenant's schema; the task runs with that schema active. A
    message without one (or for an unknown schema) is refused, logged and not retried:
    running it in the public schema could touch the wrong data."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        schema = kwargs.get("schema")
        if not isinstance(schema, str) or not schema:
            logger.error("task.refused", extra={"task_name": self.name, "why": "no schema in the message"})
            raise Reject("message without a schema name", requeue=False)
        connection.set_schema_to_public()
        tenant = Tenant.objects.filter(schema_name=schema).exclude(status=TenantStatus.SPARE).first()
        if tenant is None:
            logger.error("task.refused", extra={"task_name": self.name, "why": f"unknown schema {schema!r}"})
            raise Reject(f"unknown schema {schema!r}", requeue=False)
        connection.set_tenant(tenant)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            connection.set_schema_to_public()


@shared_task(base=TenantTask, name="agents.advance_task", acks_late=True, ignore_result=True)
def advance_task(*, schema: str, task_id: int, attempt: int) -> str:
    from agents.engine import advance

    return advance(task_id=task_id, attempt=attempt)


@shared_task(base=TenantTask, name="agents.resend_held_tasks", acks_late=True, ignore_result=True)
def resend_held_tasks(*, schema: str) -> int:
    """After a tenant is resumed: its tasks continue from where they stopped."""
    from agents.services import tasks_resend_held

    return tasks_resend_held()


@shared_task(name="agents.sweep_ack_deadlines", ignore_result=True)
def sweep_ack_deadlines() -> int:
    """Beat: for every active tenant, re-send (as a retry) tasks whose ack deadline passed,
    or escalate them once their retries are spent; re-send held tasks that may run again."""
    from agents.engine import task_fail
    from agents.services import tasks_overdue, tasks_resend_held

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
