"""Access-matrix entries of usage metering (agents.usage): every role of the tenant reads its
usage and limits, over the API and on the admin's Usage page, which nobody edits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.urls import reverse

if TYPE_CHECKING:
    from tests.governance.test_access_matrix import World

# The matrix's role sets (tests/governance/test_access_matrix.py), which loads this module.
ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
NOBODY: frozenset[str] = frozenset()
Allowed = frozenset[str] | str

API: dict[tuple[str, str], Allowed] = {("usage", "get"): ALL}
API_URLS = {"usage": lambda world: reverse("usage") + "?from=2026-01-01&to=2026-01-31"}


def _usage_row(world: World) -> str:
    from agents.models import TenantUsage
    from tenants.models import Tenant

    tenant = Tenant.objects.get(schema_name="acme")
    row, _ = TenantUsage.objects.get_or_create(tenant=tenant, day="2026-01-02", model="matrix", defaults={"runs": 1})
    return str(row.pk)


ADMIN: dict[tuple[str, str], Allowed] = {
    ("agents_tenantusage_changelist", "get"): ALL,
    ("agents_tenantusage_change", "get"): ALL,  # read only
    ("agents_tenantusage_history", "get"): ALL,
    ("agents_tenantusage_add", "get"): NOBODY,
    ("agents_tenantusage_delete", "get"): NOBODY,
}
ADMIN_URLS = {
    "agents_tenantusage_change": lambda world: reverse("admin:agents_tenantusage_change", args=[_usage_row(world)]),
    "agents_tenantusage_history": lambda world: reverse("admin:agents_tenantusage_history", args=[_usage_row(world)]),
    "agents_tenantusage_delete": lambda world: reverse("admin:agents_tenantusage_delete", args=[_usage_row(world)]),
}
ACTIONS: dict[str, dict[str, Allowed]] = {"agents.tenantusage": {"delete_selected": NOBODY}}
