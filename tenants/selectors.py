from __future__ import annotations

from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from tenants.exceptions import TenantNotFound
from tenants.models import Tenant, TenantStatus
from tenants.tiers import TIER_LIMITS, Limits


def tenant_list() -> QuerySet[Tenant]:
    """Customer tenants: neither the public schema nor warm-pool spares."""
    return (
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .exclude(status=TenantStatus.SPARE)
        .prefetch_related("domains")
    )


def tenant_get(*, schema_name: str) -> Tenant:
    try:
        return tenant_list().get(schema_name=schema_name)
    except Tenant.DoesNotExist:
        raise TenantNotFound(f"no tenant with schema {schema_name!r}", schema=schema_name) from None


def tenant_limits(*, tenant: Tenant) -> Limits:
    """The tenant's effective limits: its tier's limits with its overrides applied."""
    return TIER_LIMITS[tenant.tier].with_overrides(tenant.limit_overrides or {})


def spare_count() -> int:
    return Tenant.objects.filter(status=TenantStatus.SPARE).count()
