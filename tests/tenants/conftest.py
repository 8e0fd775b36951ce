"""Fixtures of the tenant tests. New tenants here are gamma (admin gina) and delta; they live
only inside the test's transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from config.connection import connection
from governance.actors import Actor
from tenants.models import Tenant, TenantStatus
from tenants.services import ProvisionResult, provision_request_build, tenant_provision
from tests.conftest import PASSWORD

Provision = Callable[..., ProvisionResult]


@pytest.fixture
def operator() -> Actor:
    return Actor.operator("tester")


@pytest.fixture
def provision(db: None) -> Provision:
    def _provision(
        *,
        name: str = "Gamma",
        domain: str = "gamma.localhost",
        tier: str = "professional",
        admin_email: str = "gina@gamma.example",
        admin_password: str | None = PASSWORD,
        **extra: Any,
    ) -> ProvisionResult:
        request = provision_request_build(
            name=name, domain=domain, tier=tier, admin_email=admin_email, admin_password=admin_password, **extra
        )
        return tenant_provision(request=request)

    return _provision


@pytest.fixture
def empty_pool(db: None) -> None:
    """Take every spare out of the warm pool (rows and schemas); the test's rollback puts them back."""
    spares = list(Tenant.objects.filter(status=TenantStatus.SPARE).values_list("pk", "schema_name"))
    with connection.cursor() as cursor:
        for _, schema in spares:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
    Tenant.objects.filter(pk__in=[pk for pk, _ in spares]).delete()
