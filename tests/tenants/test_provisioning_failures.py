"""Provisioning that must not happen: bad input is refused before anything is written, and a
failure midway leaves no tenant row, no domain and no schema behind."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Model

from config.connection import connection
from tenants.exceptions import ProvisioningError
from tenants.models import Domain, Tenant, TenantStatus
from tenants.services import provision_request_build
from tests.conftest import PASSWORD
from tests.tenants.conftest import Provision
from tests.tenants.faults import save_fails
from tests.tenants.stored import audit_head, audit_since, footprint, schemas, spare_schemas, user_in

GOOD: dict[str, Any] = {
    "name": "Gamma",
    "domain": "gamma.localhost",
    "tier": "starter",
    "admin_email": "gina@gamma.example",
    "admin_password": PASSWORD,
    "schema_name": None,
}

# (what is changed from GOOD, the field named, the message)
BAD_INPUTS: dict[str, tuple[dict[str, Any], str, str]] = {
    "duplicate-domain": ({"domain": "acme.localhost"}, "domain", "domain 'acme.localhost' is already in use"),
    "duplicate-domain-other-case": (
        {"domain": "ACME.localhost"},
        "domain",
        "domain 'acme.localhost' is already in use",
    ),
    "schema-of-existing-tenant": ({"domain": "acme.example"}, "schema_name", "schema 'acme' is already in use"),
    "schema-starting-with-digit": ({"schema_name": "1abc"}, "schema_name", "'1abc' is not a valid schema name"),
    "schema-with-capitals-and-dash": (
        {"schema_name": "Bad-Name"},
        "schema_name",
        "'Bad-Name' is not a valid schema name",
    ),
    "schema-public": ({"schema_name": "public"}, "schema_name", "'public' is not a valid schema name"),
    "schema-information-schema": (
        {"schema_name": "information_schema"},
        "schema_name",
        "'information_schema' is not a valid schema name",
    ),
    "schema-pg-prefix": ({"schema_name": "pg_x"}, "schema_name", "'pg_x' is not a valid schema name"),
    "schema-spare-prefix": ({"schema_name": "spare_x"}, "schema_name", "'spare_x' is not a valid schema name"),
    "schema-too-long": ({"schema_name": "s" * 49}, "schema_name", "is not a valid schema name"),
    "invalid-domain": ({"domain": "not a host"}, "domain", "'not a host' is not a valid host name"),
    "unknown-tier": (
        {"tier": "platinum"},
        "tier",
        "unknown tier 'platinum'; choose one of free, starter, professional, enterprise",
    ),
    "bad-email": ({"admin_email": "gina-at-gamma"}, "admin_email", "'gina-at-gamma' is not a valid email address"),
    "weak-password": (
        {"admin_password": "password"},
        "admin_password",
        "admin password refused: This password is too common.",
    ),
    "password-like-the-email": (
        {"admin_password": "gina@gamma.example"},
        "admin_password",
        "admin password refused: The password is too similar to the",
    ),
    "numeric-password": ({"admin_password": "4815162342"}, "admin_password", "This password is entirely numeric."),
    "empty-name": ({"name": "   "}, "name", "name must be 1-100 characters"),
    "name-too-long": ({"name": "x" * 101}, "name", "name must be 1-100 characters"),
}


def _command_args(values: dict[str, Any]) -> list[str]:
    args = [
        "--name",
        values["name"],
        "--domain",
        values["domain"],
        "--tier",
        values["tier"],
        "--admin-email",
        values["admin_email"],
    ]
    if values["admin_password"] is not None:
        args += ["--admin-password", values["admin_password"]]
    if values["schema_name"] is not None:
        args += ["--schema", values["schema_name"]]
    return args


@pytest.mark.parametrize(("change", "field", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_is_refused_with_a_clear_message_and_nothing_created(
    db: None, change: dict[str, Any], field: str, message: str
) -> None:
    before, public_seq = footprint(), audit_head("public")

    with pytest.raises(ProvisioningError) as refused:
        provision_request_build(**{**GOOD, **change})

    assert message in str(refused.value)
    assert refused.value.extra == {"field": field}
    assert refused.value.status == 400 and refused.value.code == "provisioning_refused"
    assert footprint() == before
    assert audit_since("public", public_seq) == []


@pytest.mark.parametrize(("change", "field", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_provision_tenant_command_refuses_bad_input_with_a_non_zero_exit(
    db: None, change: dict[str, Any], field: str, message: str
) -> None:
    before = footprint()

    with pytest.raises(CommandError) as refused:
        call_command("provision_tenant", *_command_args({**GOOD, **change}))

    assert message in str(refused.value)
    assert refused.value.returncode != 0
    assert footprint() == before


def test_a_schema_that_exists_without_a_tenant_row_is_refused(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA stray")
    before = footprint()

    with pytest.raises(ProvisioningError, match="schema 'stray' is already in use"):
        provision_request_build(**{**GOOD, "schema_name": "stray"})

    assert footprint() == before


def test_domain_with_dashes_gets_a_schema_with_underscores_and_a_digit_label_gets_a_prefix(db: None) -> None:
    assert provision_request_build(**{**GOOD, "domain": "big-co.localhost"}).schema_name == "big_co"
    assert provision_request_build(**{**GOOD, "domain": "42.localhost"}).schema_name == "t_42"


@pytest.fixture
def immediate_constraints(db: None) -> None:
    """Check foreign keys at once instead of at commit. Outside tests the fallback's migrations
    commit before a failed claim drops the new spare; inside the test's single transaction the
    deferred checks of those migrations would still be pending and PostgreSQL refuses to drop
    tables with pending trigger events."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.parametrize("model", [User, Domain], ids=["admin-user", "domain"])
def test_a_failure_after_claiming_a_spare_puts_it_back_and_leaves_nothing(
    provision: Provision, model: type[Model]
) -> None:
    oldest = Tenant.objects.filter(status=TenantStatus.SPARE).order_by("created_at", "pk").first()
    before, spares, public_seq = footprint(), spare_schemas(), audit_head("public")

    with save_fails(model), pytest.raises(RuntimeError, match=f"injected failure saving {model.__name__}"):
        provision()

    assert footprint() == before
    assert spare_schemas() == spares
    assert Tenant.objects.get(pk=oldest.pk).schema_name == oldest.schema_name
    assert not Tenant.objects.filter(schema_name="gamma").exists()
    assert not Domain.objects.filter(domain="gamma.localhost").exists()
    assert "gamma" not in schemas()
    assert audit_since("public", public_seq) == []
    assert connection.schema_name == "public"


@pytest.mark.usefixtures("immediate_constraints", "empty_pool")
def test_a_failure_on_the_fallback_path_drops_the_freshly_migrated_spare_too(provision: Provision) -> None:
    before, public_seq = footprint(), audit_head("public")

    with save_fails(User), pytest.raises(RuntimeError, match="injected failure saving User"):
        provision()

    assert footprint() == before
    assert spare_schemas() == {}
    assert not any(schema.startswith("spare_") for schema in schemas())
    assert "gamma" not in schemas()
    assert audit_since("public", public_seq) == []


def test_the_pool_still_serves_provisioning_after_a_failed_attempt(provision: Provision) -> None:
    with save_fails(User), pytest.raises(RuntimeError):
        provision()

    result = provision()

    assert result.from_pool is True
    assert Tenant.objects.get(schema_name="gamma").status == TenantStatus.ACTIVE
    assert user_in("gamma", "gina@gamma.example")[1] == ["admin"]
