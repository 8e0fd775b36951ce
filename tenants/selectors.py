from __future__ import annotations

import copy
import time
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save
from django_tenants.utils import get_public_schema_name

from tenants.exceptions import TenantNotFound
from tenants.models import Domain, Tenant, TenantStatus
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


# The tenant of each host, remembered by each process for a few seconds: resolving it is the
# first query of every request otherwise (and costs a second SET search_path). A change to a
# tenant or a domain saved in this process forgets them all at once (tenant_cache_clear, on
# post_save and post_delete); other processes see it within TENANT_CACHE_SECONDS, so a
# suspended tenant is refused everywhere within that time. Unknown hosts are not remembered.
TENANT_CACHE_SECONDS = 5.0
_by_host: dict[str, tuple[float, Tenant]] = {}


def tenant_for_host(*, hostname: str) -> Tenant:
    """The tenant whose domain ``hostname`` is (raises Domain.DoesNotExist). Each call gets
    its own copy: the request middleware writes to it."""
    now = time.monotonic()
    known = _by_host.get(hostname)
    if known is None or known[0] <= now:
        tenant = Domain.objects.select_related("tenant").get(domain=hostname).tenant
        known = _by_host[hostname] = (now + TENANT_CACHE_SECONDS, tenant)
    return copy.copy(known[1])


def tenant_cache_clear() -> None:
    """Forget every host's tenant."""
    _by_host.clear()


def _tenant_changed(**_: Any) -> None:
    # Again once committed: a request between the save and the commit may have read the old row.
    tenant_cache_clear()
    transaction.on_commit(tenant_cache_clear)


# Connected here rather than in the app's ready(): a process that never imported this module
# holds no cache to forget.
for _model in (Tenant, Domain):
    for _signal in (post_save, post_delete):
        _signal.connect(_tenant_changed, sender=_model, dispatch_uid=f"tenant_cache_clear.{_model.__name__}")


def tenant_limits(*, tenant: Tenant) -> Limits:
    """The tenant's effective limits: its tier's limits with its overrides applied."""
    return TIER_LIMITS[tenant.tier].with_overrides(tenant.limit_overrides or {})


def spare_count() -> int:
    return Tenant.objects.filter(status=TenantStatus.SPARE).count()
