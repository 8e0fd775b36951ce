"""The test cast and the tenants they live in.

The test database is built once per session: public schema migrated, a warm pool of spare
schemas, and two committed tenants, acme and beta, each with an admin. Tests run inside a
transaction (pytest-django's ``db``) that is rolled back, DDL included, so a test may
provision, rename or drop schemas freely.

Cast: operator otto (public schema), acme's admin alice and reviewer rita, beta's admin bob.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client

from tenants.models import Tenant
from tenants.services import provision_request_build, spare_pool_fill, tenant_provision

PASSWORD = "correct-horse-battery-9"
SESSION_SPARES = 4


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    with django_db_blocker.unblock():
        spare_pool_fill(size=SESSION_SPARES)
        for name, domain, admin in (("Acme", "acme.localhost", "alice@acme.example"),
                                    ("Beta", "beta.localhost", "bob@beta.example")):
            request = provision_request_build(name=name, domain=domain, tier="starter", admin_email=admin,
                                              admin_password=PASSWORD)
            tenant_provision(request=request)
        acme = Tenant.objects.get(schema_name="acme")
        connection.set_tenant(acme)
        from django.contrib.auth.models import Group, User

        rita = User.objects.create_user("rita@acme.example", "rita@acme.example", PASSWORD, is_staff=True)
        rita.groups.add(Group.objects.get(name="reviewer"))
        connection.set_schema_to_public()
        User.objects.create_superuser("otto@vigil.example", "otto@vigil.example", PASSWORD)
        spare_pool_fill(size=SESSION_SPARES)


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    yield
    connection.set_schema_to_public()


@pytest.fixture
def acme(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="acme")


@pytest.fixture
def beta(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="beta")


@pytest.fixture
def in_acme(acme: Tenant) -> Iterator[Tenant]:
    connection.set_tenant(acme)
    yield acme
    connection.set_schema_to_public()


def host_client(host: str) -> Client:
    return Client(HTTP_HOST=host)


@pytest.fixture
def acme_client(db: None) -> Client:
    return host_client("acme.localhost")


@pytest.fixture
def beta_client(db: None) -> Client:
    return host_client("beta.localhost")


@pytest.fixture
def public_client(db: None) -> Client:
    return host_client("localhost")
