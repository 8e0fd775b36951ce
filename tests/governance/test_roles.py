from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection

from governance.roles import ROLE_NAMES
from tenants.models import Tenant

AUDIT_WRITES = {"add_auditevent", "change_auditevent", "delete_auditevent"}


def _perms(role: str) -> set[str]:
    return {f"{app}.{codename}" for app, codename in Group.objects.get(name=role).permissions.values_list(
        "content_type__app_label", "codename")}


@pytest.fixture(params=["acme", "beta"])
def tenant(request: pytest.FixtureRequest, db: None) -> Tenant:
    tenant = Tenant.objects.get(schema_name=request.param)
    connection.set_tenant(tenant)
    return tenant


def test_every_role_group_exists_in_each_tenant(tenant: Tenant) -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {"admin", "reviewer", "agent_manager", "viewer"}
    assert set(ROLE_NAMES) == {"admin", "reviewer", "agent_manager", "viewer"}


def test_roles_inherit_viewer_then_reviewer_and_agent_manager_then_admin(tenant: Tenant) -> None:
    viewer, reviewer, manager, admin = (_perms(r) for r in ("viewer", "reviewer", "agent_manager", "admin"))
    assert "governance.view_auditevent" in viewer
    assert viewer <= reviewer <= admin
    assert viewer <= manager <= admin
    assert {"auth.add_user", "auth.change_group", "auth.view_permission"} <= admin - reviewer - manager


def test_viewer_can_only_view(tenant: Tenant) -> None:
    assert all(perm.split(".")[1].startswith("view_") for perm in _perms("viewer"))


def test_no_role_may_add_change_or_delete_audit_events(tenant: Tenant) -> None:
    holders = Group.objects.filter(permissions__content_type__app_label="governance",
                                   permissions__codename__in=AUDIT_WRITES)
    assert list(holders) == []
    assert Permission.objects.filter(codename__in=AUDIT_WRITES).count() == 3  # they exist, nobody holds them
    assert not User.objects.filter(user_permissions__codename__in=AUDIT_WRITES).exists()


def test_the_tenant_admin_holds_no_audit_write_permission(db: None) -> None:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    alice = User.objects.get(username="alice@acme.example")
    assert not alice.is_superuser
    assert alice.has_perm("governance.view_auditevent")
    assert not any(alice.has_perm(f"governance.{codename}") for codename in AUDIT_WRITES)
