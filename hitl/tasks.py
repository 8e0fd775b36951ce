"""Celery entry points of hitl: thin, safe to run twice (see hitl.ladder)."""

from __future__ import annotations

import logging

from celery import shared_task

from config.connection import connection
from tenants.models import Tenant, TenantStatus

logger = logging.getLogger(__name__)


@shared_task(name="hitl.sla_sweep", ignore_result=True)
def sla_sweep() -> int:
    """Beat: the SLA ladder of every active tenant (reminders, escalations, terminal actions,
    assignment of waiting requests). Returns how many steps were taken."""
    from hitl.ladder import approvals_sla_sweep

    taken = 0
    for tenant in list(Tenant.objects.filter(status=TenantStatus.ACTIVE).exclude(schema_name="public")):
        connection.set_tenant(tenant)
        try:
            count = approvals_sla_sweep()
            taken += count.reminded + count.escalated + count.closed + count.assigned
        except Exception:  # one broken tenant must not stop the sweep of the others
            logger.exception("sla_sweep.failed", extra={"schema": tenant.schema_name})
        finally:
            connection.set_schema_to_public()
    return taken
