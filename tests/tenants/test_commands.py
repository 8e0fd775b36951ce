"""The operators' commands: output, exit status and what they store."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError

from config.connection import connection
from tenants.management.commands import delete_tenant
from tenants.migration_runner import schemas_with_pending_migrations
from tenants.models import Domain, Tenant, TenantStatus
from tests.tenants.stored import audit_head, audit_since, in_schema, schemas, spare_schemas


def _run(command: str | BaseCommand, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def _delete_tenant() -> BaseCommand:
    # Vigil's own command, whichever app `manage.py delete_tenant` resolves to (see the next test).
    return delete_tenant.Command()


def test_every_operator_command_name_runs_vigils_own_command() -> None:
    names = [
        "provision_tenant",
        "list_tenants",
        "suspend_tenant",
        "resume_tenant",
        "delete_tenant",
        "migrate_tenants",
        "fill_spare_pool",
    ]

    assert {name: get_commands()[name] for name in names} == {name: "tenants" for name in names}


def test_list_tenants_prints_a_table_of_customer_tenants_and_the_pool_size(db: None) -> None:
    lines = _run("list_tenants").splitlines()

    assert lines[0].split() == ["SCHEMA", "NAME", "TIER", "STATUS", "DOMAINS"]
    assert [line.split() for line in lines[1:-1]] == [
        ["acme", "Acme", "starter", "active", "acme.localhost"],
        ["beta", "Beta", "starter", "active", "beta.localhost"],
    ]
    assert lines[-1] == f"2 tenant(s); {len(spare_schemas())} spare schema(s) in the warm pool"


def test_list_tenants_json_gives_one_object_per_tenant_with_effective_limits(acme: Tenant) -> None:
    acme.limit_overrides = {"max_agents": 12}
    acme.status = TenantStatus.SUSPENDED
    acme.save(update_fields=["limit_overrides", "status"])

    rows = [json.loads(line) for line in _run("list_tenants", "--json").splitlines()]

    assert [row["schema"] for row in rows] == ["acme", "beta"]
    first = rows[0]
    assert (first["name"], first["tier"], first["status"], first["domains"]) == (
        "Acme",
        "starter",
        "suspended",
        ["acme.localhost"],
    )
    assert first["limits"] == {
        "max_agents": 12,
        "runs_per_day": 2_000,
        "tokens_per_month": 2_000_000,
        "requests_per_minute": 300,
        "max_pending_approvals": 100,
        "max_concurrent_tasks": 25,
    }
    assert rows[1]["limits"]["max_agents"] == 10
    assert first["created_at"] == acme.created_at.isoformat()


def test_suspend_and_resume_commands_change_the_status_and_audit_as_the_operator(acme: Tenant) -> None:
    public_seq = audit_head("public")

    assert _run("suspend_tenant", "acme").strip() == "acme: suspended"
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.SUSPENDED
    assert _run("resume_tenant", "acme").strip() == "acme: active"
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE

    events = audit_since("public", public_seq)
    assert [(e.verb, e.target_id) for e in events] == [("tenant.suspended", "acme"), ("tenant.resumed", "acme")]
    assert all(e.actor_label.startswith("operator:") for e in events)
    assert events[0].correlation_id != events[1].correlation_id


def test_suspend_command_on_a_suspended_tenant_exits_non_zero(acme: Tenant) -> None:
    _run("suspend_tenant", "acme")

    with pytest.raises(CommandError, match="tenant 'acme' is suspended, not active") as failed:
        _run("suspend_tenant", "acme")

    assert failed.value.returncode != 0


@pytest.mark.parametrize(
    ("command", "args"),
    [("suspend_tenant", ["nope"]), ("resume_tenant", ["nope"]), (_delete_tenant(), ["nope", "--confirm", "nope"])],
    ids=["suspend", "resume", "delete"],
)
def test_lifecycle_commands_exit_non_zero_on_an_unknown_schema(
    db: None, command: str | BaseCommand, args: list[str]
) -> None:
    public_seq = audit_head("public")

    with pytest.raises(CommandError, match="no tenant with schema 'nope'") as failed:
        _run(command, *args)

    assert failed.value.returncode != 0
    assert audit_since("public", public_seq) == []


def test_delete_command_needs_the_confirmation_flag(db: None) -> None:
    with pytest.raises(CommandError, match="--confirm"):
        _run(_delete_tenant(), "acme")

    assert "acme" in schemas() and Tenant.objects.filter(schema_name="acme").exists()


def test_delete_command_refuses_a_confirmation_that_is_not_the_schema(acme: Tenant) -> None:
    with pytest.raises(CommandError, match="confirmation 'beta' does not match schema 'acme'"):
        _run(_delete_tenant(), "acme", "--confirm", "beta")

    assert {"acme", "beta"} <= schemas()
    assert Tenant.objects.filter(schema_name__in=["acme", "beta"]).count() == 2
    assert Domain.objects.filter(domain__in=["acme.localhost", "beta.localhost"]).count() == 2


def test_delete_command_drops_the_tenant(acme: Tenant) -> None:
    public_seq = audit_head("public")

    assert _run(_delete_tenant(), "acme", "--confirm", "acme").strip() == "acme: deleted"

    assert "acme" not in schemas()
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert not Domain.objects.filter(domain="acme.localhost").exists()
    [event] = audit_since("public", public_seq)
    assert (event.verb, event.target_id) == ("tenant.deleted", "acme")


def test_fill_spare_pool_tops_the_pool_up_to_the_size_asked(db: None) -> None:
    before = spare_schemas()

    output = _run("fill_spare_pool", "--size", str(len(before) + 1))

    after = spare_schemas()
    assert output.strip() == f"created 1 spare schema(s); pool now holds {len(before) + 1}"
    assert len(after) == len(before) + 1 and before.items() <= after.items()
    [new] = set(after.values()) - set(before.values())
    assert new.startswith("spare_") and new in schemas()
    assert Tenant.objects.get(schema_name=new).status == TenantStatus.SPARE
    assert schemas_with_pending_migrations()[0] == []


def test_fill_spare_pool_creates_nothing_when_the_pool_is_full(db: None) -> None:
    before = spare_schemas()

    output = _run("fill_spare_pool", "--size", str(len(before)))

    assert output.strip() == f"created 0 spare schema(s); pool now holds {len(before)}"
    assert spare_schemas() == before


def test_fill_spare_pool_refuses_a_negative_size(db: None) -> None:
    before = spare_schemas()

    with pytest.raises(CommandError, match="--size must be >= 0"):
        _run("fill_spare_pool", "--size", "-1")

    assert spare_schemas() == before


def test_migrate_tenants_reports_the_schemas_checked_and_does_nothing_when_none_is_pending(db: None) -> None:
    checked = Tenant.objects.exclude(schema_name="public").count()
    before = schemas()

    lines = _run("migrate_tenants").splitlines()

    assert lines == ["public: migrated", f"{checked} schema(s) checked, 0 with pending migrations"]
    assert checked == 2 + len(spare_schemas())
    assert schemas() == before


def test_migrate_tenants_finds_a_schema_with_a_pending_migration(db: None) -> None:
    spare = min(spare_schemas().values())
    with in_schema(spare), connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE id = (SELECT max(id) FROM django_migrations)")

    pending, checked = schemas_with_pending_migrations()

    assert pending == [spare]
    assert checked == Tenant.objects.exclude(schema_name="public").count()
    assert connection.schema_name == "public"


def test_migrate_tenants_refuses_zero_processes(db: None) -> None:
    with pytest.raises(CommandError, match="--processes must be >= 1"):
        _run("migrate_tenants", "--processes", "0", "--skip-public")
