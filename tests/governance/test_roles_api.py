"""Roles over the API: the role table, assign and revoke (admins only, audited, never the
admin role of oneself or of the last admin), and "may X do C on agent R" from
governance.access."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agents.services import agent_create
from config.connection import connection
from governance.api_roles import RoleRefused, role_revoke
from governance.roles import user_agent_scope_set, user_roles_set
from tenants.models import Tenant
from tests.agents.api_support import member_add
from tests.conftest import ALICE, RITA, VERA

from .conftest import chain_head, events_after

CAROL = "carol@acme.example"


def _as(tenant: Tenant, username: str) -> Client:
    connection.set_tenant(tenant)
    client = Client(HTTP_HOST="acme.localhost")
    client.force_login(User.objects.get(username=username))
    connection.set_schema_to_public()
    return client


def _post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, "application/json")


def _roles(username: str) -> list[str]:
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


@pytest.fixture
def carol(acme: Tenant) -> User:
    connection.set_tenant(acme)
    return User.objects.create_user(CAROL, CAROL, "carol-pass-77")


def test_the_role_table_names_capabilities_and_only_admins_see_who_holds_each(acme: Tenant) -> None:
    member_add(acme, VERA, "viewer")

    as_admin = _as(acme, ALICE).get("/api/v1/governance/roles/").json()["roles"]
    as_viewer = _as(acme, VERA).get("/api/v1/governance/roles/").json()["roles"]

    assert [r["code"] for r in as_admin] == ["viewer", "reviewer", "agent_manager", "admin"]
    admin_row = as_admin[-1]
    assert admin_row["inherits"] == ["reviewer", "agent_manager"] and "manage_users" in admin_row["capabilities"]
    assert {r["code"]: r["users"] for r in as_admin}["reviewer"] == [RITA]
    assert all("users" not in r for r in as_viewer)


def test_an_admin_assigns_and_revokes_roles_and_each_change_is_audited(acme: Tenant, carol: User) -> None:
    alice = _as(acme, ALICE)
    connection.set_tenant(acme)
    start = chain_head()[0]

    assigned = _post(alice, "/api/v1/governance/roles/assign/", {"user": CAROL, "role": "reviewer"})
    also = _post(alice, "/api/v1/governance/roles/assign/", {"user": CAROL, "role": "viewer"})
    revoked = _post(alice, "/api/v1/governance/roles/revoke/", {"user": CAROL, "role": "reviewer"})

    assert [r.json()["roles"] for r in (assigned, also, revoked)] == [["reviewer"], ["viewer", "reviewer"], ["viewer"]]
    connection.set_tenant(acme)
    assert _roles(CAROL) == ["viewer"] and User.objects.get(username=CAROL).is_staff
    changes = [(e.verb, e.actor_label, e.data["from"], e.data["to"]) for e in events_after(start)]
    assert changes == [
        ("user.roles_changed", ALICE, [], ["reviewer"]),
        ("user.roles_changed", ALICE, ["reviewer"], ["reviewer", "viewer"]),
        ("user.roles_changed", ALICE, ["reviewer", "viewer"], ["viewer"]),
    ]


def test_only_admins_change_roles_and_bad_input_is_named(acme: Tenant, carol: User) -> None:
    rita = _as(acme, RITA)
    alice = _as(acme, ALICE)

    refused = _post(rita, "/api/v1/governance/roles/assign/", {"user": CAROL, "role": "admin"})
    unknown_role = _post(alice, "/api/v1/governance/roles/assign/", {"user": CAROL, "role": "superuser"})
    unknown_user = _post(alice, "/api/v1/governance/roles/assign/", {"user": "who@acme.example", "role": "viewer"})

    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert (unknown_role.status_code, list(unknown_role.json()["extra"]["fields"])) == (400, ["role"])
    assert (unknown_user.status_code, unknown_user.json()["extra"]) == (404, {"user": "who@acme.example"})
    connection.set_tenant(acme)
    assert _roles(CAROL) == []


def test_an_admin_cannot_take_their_own_admin_role(acme: Tenant, carol: User) -> None:
    user_roles_set(user=carol, roles=["admin"], actor=None)
    alice = _as(acme, ALICE)

    response = _post(alice, "/api/v1/governance/roles/revoke/", {"user": ALICE, "role": "admin"})

    assert (response.status_code, response.json()["code"], response.json()["extra"]) == (
        409,
        "role_refused",
        {"rule": "self"},
    )
    connection.set_tenant(acme)
    assert _roles(ALICE) == ["admin"]
    # Another admin may.
    assert (
        _post(_as(acme, CAROL), "/api/v1/governance/roles/revoke/", {"user": ALICE, "role": "admin"}).status_code == 200
    )


def test_the_last_admin_keeps_the_admin_role(acme: Tenant) -> None:
    connection.set_tenant(acme)
    alice = User.objects.get(username=ALICE)

    with pytest.raises(RoleRefused) as refused:
        role_revoke(user=alice, role="admin", actor=User.objects.get(username=RITA))

    assert refused.value.extra == {"rule": "last_admin"}
    assert _roles(ALICE) == ["admin"]


def test_the_permission_check_answers_from_roles_and_agent_scopes(acme: Tenant, carol: User) -> None:
    connection.set_tenant(acme)
    mine = agent_create(name="roles-api-mine", blueprint="triage")
    other = agent_create(name="roles-api-other", blueprint="triage")
    user_roles_set(user=carol, roles=["agent_manager"], actor=None)
    user_agent_scope_set(user=carol, grant="manage_agent", agent_ids=[mine.pk], actor=None)
    alice = _as(acme, ALICE)

    def check(**params: str | int) -> Any:
        return alice.get("/api/v1/governance/permissions/check/", params).json()

    assert check(user=CAROL, capability="run", agent=mine.pk)["allowed"] is True
    assert (check(user=CAROL, capability="run", agent=other.pk)["reason"]) == "agent_scope"
    assert (check(user=CAROL, capability="review")["allowed"], check(user=CAROL, capability="review")["reason"]) == (
        False,
        "role",
    )
    me = check(capability="manage_users")
    assert (me["user"], me["allowed"], me["roles"]) == (ALICE, True, ["admin"])


def test_the_permission_check_refuses_bad_questions(acme: Tenant, carol: User) -> None:
    rita = _as(acme, RITA)
    path = "/api/v1/governance/permissions/check/"

    about_other = rita.get(path, {"user": ALICE, "capability": "view"})
    bad_capability = rita.get(path, {"capability": "fly"})
    bad_agent = rita.get(path, {"capability": "view", "agent": "\u0663"})
    no_agent = rita.get(path, {"capability": "view", "agent": "99999999"})

    assert (about_other.status_code, about_other.json()["code"]) == (403, "permission_denied")
    assert (bad_capability.status_code, bad_capability.json()["extra"]) == (400, {"field": "capability"})
    assert (bad_agent.status_code, bad_agent.json()["extra"]) == (400, {"field": "agent"})
    assert no_agent.status_code == 404
    assert rita.get(path, {"capability": "review"}).json()["allowed"] is True
