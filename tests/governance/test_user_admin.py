"""The tenant admin's user screens, driven as a tenant admin (alice) would, hostile or not:
users get roles, never the superuser, staff or permission flags, and API tokens are never shown."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token

from agents.services import agent_create
from config.connection import connection
from governance.access import agent_grants_held
from governance.models import AuditEvent
from governance.roles import user_agent_scope_set
from tenants.models import Tenant
from tests.conftest import ALICE, PASSWORD, RITA

from .conftest import chain_head, events_after, member_change_form

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

CAROL = "carol@acme.example"


@pytest.fixture
def alice(in_acme: Tenant, acme_client: Client) -> Client:
    assert acme_client.login(username=ALICE, password=PASSWORD)
    return acme_client


@pytest.fixture
def carol(in_acme: Tenant) -> User:
    """A new acme user without a role."""
    return User.objects.create_user(CAROL, CAROL, PASSWORD)


def _change(client: Client, user: User, **changes: object) -> _MonkeyPatchedWSGIResponse:
    form = member_change_form(user, **changes)
    return client.post(f"/admin/auth/user/{user.pk}/change/", form)


def test_the_user_form_offers_roles_and_agent_scopes_but_no_superuser_staff_or_permission_fields(
    alice: Client, carol: User
) -> None:
    page = alice.get(f"/admin/auth/user/{carol.pk}/change/").content.decode()
    for offered in (
        'name="roles"',
        'name="view_agents"',
        'name="manage_agents"',
        'name="review_agents"',
        'name="is_active"',
    ):
        assert offered in page, offered
    for hidden in ('name="is_superuser"', 'name="is_staff"', 'name="user_permissions"', 'name="groups"'):
        assert hidden not in page, hidden


def test_a_tenant_admin_cannot_make_herself_superuser_staff_or_give_herself_permissions(alice: Client) -> None:
    me = User.objects.get(username=ALICE)
    every_permission = list(Permission.objects.values_list("pk", flat=True))
    response = _change(
        alice,
        me,
        is_superuser="on",
        is_staff="on",
        user_permissions=every_permission,
        groups=list(Group.objects.values_list("pk", flat=True)),
    )
    assert response.status_code == 302
    me.refresh_from_db()
    assert not me.is_superuser
    assert not me.user_permissions.exists()
    assert list(me.groups.values_list("name", flat=True)) == ["admin"]


def test_giving_a_user_a_role_makes_them_staff_and_taking_every_role_away_unmakes_them(
    alice: Client, carol: User
) -> None:
    assert not carol.is_staff
    assert _change(alice, carol, roles=["viewer", "reviewer"]).status_code == 302
    carol.refresh_from_db()
    assert carol.is_staff and set(carol.groups.values_list("name", flat=True)) == {"viewer", "reviewer"}
    assert _change(alice, carol, roles=[]).status_code == 302
    carol.refresh_from_db()
    assert not carol.is_staff and not carol.groups.exists()
    changes = [
        e.data for e in AuditEvent.objects.filter(verb="user.roles_changed", target_id=str(carol.pk)).order_by("seq")
    ]
    assert [(c["from"], c["to"]) for c in changes] == [([], ["reviewer", "viewer"]), (["reviewer", "viewer"], [])]


def test_a_user_without_a_role_cannot_sign_in_to_the_admin(in_acme: Tenant, acme_client: Client, carol: User) -> None:
    response = acme_client.post("/admin/login/?next=/admin/", {"username": CAROL, "password": PASSWORD})
    assert response.status_code == 200
    assert "staff account" in response.content.decode()
    assert "_auth_user_id" not in acme_client.session


def test_a_code_that_is_not_a_role_is_refused_and_nothing_changes(alice: Client, carol: User) -> None:
    start, _ = chain_head()
    response = _change(alice, carol, roles=["superuser"])
    assert response.status_code == 200
    assert "Select a valid choice. superuser is not one of the available choices." in response.content.decode()
    carol.refresh_from_db()
    assert not carol.groups.exists() and not carol.is_staff and not carol.is_superuser
    assert events_after(start) == []


def test_api_tokens_are_not_shown_anywhere_in_the_tenant_admin(alice: Client) -> None:
    token = Token.objects.create(user=User.objects.get(username=RITA))
    assert alice.get("/admin/authtoken/tokenproxy/").status_code == 404
    assert alice.get(f"/admin/authtoken/tokenproxy/{token.user_id}/change/").status_code == 404
    for page in ("/admin/", "/admin/auth/user/", f"/admin/auth/user/{token.user_id}/change/"):
        content = alice.get(page).content.decode()
        assert token.key not in content and "tokenproxy" not in content, page


def test_role_groups_are_shown_read_only_and_cannot_be_added_changed_or_deleted(alice: Client) -> None:
    viewer = Group.objects.get(name="viewer")
    before = set(viewer.permissions.values_list("pk", flat=True))
    page = alice.get(f"/admin/auth/group/{viewer.pk}/change/")
    assert page.status_code == 200
    assert 'name="permissions"' not in page.content.decode() and 'name="name"' not in page.content.decode()
    changed = alice.post(f"/admin/auth/group/{viewer.pk}/change/", {"name": "viewer", "permissions": []})
    assert changed.status_code == 403
    assert alice.post("/admin/auth/group/add/", {"name": "superusers"}).status_code == 403
    assert alice.post(f"/admin/auth/group/{viewer.pk}/delete/", {"post": "yes"}).status_code == 403
    assert set(Group.objects.get(pk=viewer.pk).permissions.values_list("pk", flat=True)) == before
    assert not Group.objects.filter(name="superusers").exists()


def test_only_an_admin_reaches_the_user_screens(in_acme: Tenant, acme_client: Client, carol: User) -> None:
    assert acme_client.login(username=RITA, password=PASSWORD)
    assert acme_client.get("/admin/auth/user/").status_code == 403
    assert acme_client.get(f"/admin/auth/user/{carol.pk}/change/").status_code == 403
    assert _change(acme_client, carol, roles=["admin"]).status_code == 403
    carol.refresh_from_db()
    assert not carol.groups.exists()
    connection.set_tenant(in_acme)
    assert not AuditEvent.objects.filter(verb="user.roles_changed", target_id=str(carol.pk)).exists()


def test_editing_a_deactivated_user_keeps_their_agent_scope(alice: Client, carol: User) -> None:
    agent = agent_create(name="scoped-desk", blueprint="triage")
    user_agent_scope_set(user=carol, grant="review_agent", agent_ids=[agent.pk], actor=None)
    deactivate = member_change_form(carol)
    del deactivate["is_active"]
    assert alice.post(f"/admin/auth/user/{carol.pk}/change/", deactivate).status_code == 302
    carol.refresh_from_db()
    assert not carol.is_active
    assert _change(alice, carol, first_name="Carol").status_code == 302
    assert agent_grants_held(user_id=carol.pk) == {"review_agent": frozenset({agent.pk})}
