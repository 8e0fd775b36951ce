"""Reading the stored state the tenant tests assert on: tenant and domain rows, schemas in the
catalog, users of a schema and the audit chain of a schema. Read-only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth.models import User

from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Domain, Tenant, TenantStatus


@contextmanager
def in_schema(schema: str) -> Iterator[None]:
    """Switch the connection to ``schema`` for the block, then back to where it was."""
    previous = connection.tenant
    connection.set_schema(schema)
    try:
        yield
    finally:
        connection.set_tenant(previous)


def schemas() -> set[str]:
    """Every schema in the catalog but PostgreSQL's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schema_name FROM information_schema.schemata "
            "WHERE schema_name NOT LIKE 'pg\\_%%' AND schema_name <> 'information_schema'"
        )
        return {row[0] for row in cursor.fetchall()}


def spare_schemas() -> dict[int, str]:
    """Spare rows of the warm pool: pk -> schema name."""
    return dict(Tenant.objects.filter(status=TenantStatus.SPARE).values_list("pk", "schema_name"))


@dataclass(frozen=True)
class Footprint:
    tenants: frozenset[tuple[int, str, str]]  # pk, schema, status
    domains: frozenset[tuple[str, str]]  # domain, schema
    schemas: frozenset[str]


def footprint() -> Footprint:
    """Everything provisioning could leave behind, to compare before and after."""
    return Footprint(
        tenants=frozenset(Tenant.objects.values_list("pk", "schema_name", "status")),
        domains=frozenset(Domain.objects.values_list("domain", "tenant__schema_name")),
        schemas=frozenset(schemas()),
    )


def usernames(schema: str) -> set[str]:
    with in_schema(schema):
        return set(User.objects.values_list("username", flat=True))


def user_in(schema: str, username: str) -> tuple[User, list[str]]:
    """The user of that schema and the names of its groups (its roles)."""
    with in_schema(schema):
        user = User.objects.get(username=username)
        return user, sorted(user.groups.values_list("name", flat=True))


def audit_head(schema: str) -> int:
    """The seq of the schema's last audit event (0 for an empty chain)."""
    with in_schema(schema):
        last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first()
    return last or 0


def audit_since(schema: str, seq: int, *, verb: str | None = None) -> list[AuditEvent]:
    """Events appended to the schema's chain after ``seq``, oldest first."""
    with in_schema(schema):
        events = AuditEvent.objects.filter(seq__gt=seq).order_by("seq")
        if verb is not None:
            events = events.filter(verb=verb)
        return list(events)
