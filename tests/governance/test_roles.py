from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User

from config.connection import connection
from governance.access import ROLE_CAPABILITIES, Capability, Role, capabilities_of, user_may
from governance.roles import ROLE_NAMES, roles_sync
from tenants.models import Tenant

AUDIT_WRITES = {"add_auditevent", "change_auditevent", "delete_auditevent"}


def _perms(role: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=role).permissions.values_list("content_type__app_label", "codename")
    }


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
    assert {"auth.add_user", "auth.view_group", "auth.view_permission"} <= admin - reviewer - manager
    assert not any(perm.startswith(("auth.add_group", "auth.change_group", "auth.delete_group")) for perm in admin)


def test_viewer_can_only_view(tenant: Tenant) -> None:
    assert all(perm.split(".")[1].startswith("view_") for perm in _perms("viewer"))


def test_no_role_may_add_change_or_delete_audit_events(tenant: Tenant) -> None:
    holders = Group.objects.filter(
        permissions__content_type__app_label="governance", permissions__codename__in=AUDIT_WRITES
    )
    assert list(holders) == []
    assert Permission.objects.filter(codename__in=AUDIT_WRITES).count() == 3  # they exist, nobody holds them
    assert not User.objects.filter(user_permissions__codename__in=AUDIT_WRITES).exists()


def test_the_tenant_admin_holds_no_audit_write_permission(db: None) -> None:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    alice = User.objects.get(username="alice@acme.example")
    assert not alice.is_superuser
    assert alice.has_perm("governance.view_auditevent")
    assert not any(alice.has_perm(f"governance.{codename}") for codename in AUDIT_WRITES)


def test_each_roles_capabilities_hold_those_of_the_roles_it_includes() -> None:
    caps = ROLE_CAPABILITIES
    assert caps[Role.VIEWER] == {Capability.VIEW}
    assert caps[Role.VIEWER] < caps[Role.REVIEWER] < caps[Role.ADMIN]
    assert caps[Role.VIEWER] < caps[Role.AGENT_MANAGER] < caps[Role.ADMIN]
    assert caps[Role.ADMIN] - caps[Role.REVIEWER] - caps[Role.AGENT_MANAGER] == {
        Capability.REVIEW_AS_ADMIN,
        Capability.MANAGE_USERS,
    }
    assert Capability.REVIEW not in caps[Role.AGENT_MANAGER] and Capability.RUN not in caps[Role.REVIEWER]


def test_permissions_added_to_a_role_group_or_a_user_grant_nothing(tenant: Tenant) -> None:
    viewer = User.objects.create_user("vic@example.org")
    viewer.groups.add(Group.objects.get(name="viewer"))
    everything = Permission.objects.filter(content_type__app_label__in=["agents", "hitl", "auth"])
    Group.objects.get(name="viewer").permissions.add(*everything)
    viewer.user_permissions.add(*everything)
    viewer.is_superuser = True
    viewer.save()
    viewer = User.objects.get(pk=viewer.pk)
    assert capabilities_of(viewer) == {Capability.VIEW}
    assert not user_may(viewer, Capability.MANAGE_AGENTS) and not user_may(viewer, Capability.MANAGE_USERS)


def test_roles_sync_restores_each_role_groups_permissions(tenant: Tenant) -> None:
    reviewer = Group.objects.get(name="reviewer")
    before = _perms("reviewer")
    reviewer.permissions.add(*Permission.objects.filter(codename="delete_user"))
    reviewer.permissions.remove(*Permission.objects.filter(codename="change_approvalrequest"))
    roles_sync()
    assert _perms("reviewer") == before
    assert "hitl.change_approvalrequest" in before and "auth.delete_user" not in before
