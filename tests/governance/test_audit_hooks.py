"""What Django itself does (logins, admin changes) lands in the tenant's own chain."""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.conftest import ALICE, PASSWORD, RITA

from .conftest import chain_head, events_after, member_change_form

WRONG_PASSWORD = "not-the-password-7351"


def _heads(*tenants: Tenant) -> dict[str, int]:
    heads = {}
    for tenant in tenants:
        connection.set_tenant(tenant)
        heads[tenant.schema_name] = chain_head()[0]
    connection.set_schema_to_public()
    heads["public"] = chain_head()[0]
    return heads


def _events_in(tenant: Tenant, after: int) -> list[AuditEvent]:
    connection.set_tenant(tenant)
    return events_after(after)


def _login_as(client: Client, tenant: Tenant, username: str) -> None:
    connection.set_tenant(tenant)
    client.force_login(User.objects.get(username=username))
    connection.set_schema_to_public()


def test_a_successful_admin_login_is_audited_in_the_tenants_chain(
    acme: Tenant, beta: Tenant, acme_client: Client
) -> None:
    heads = _heads(acme, beta)
    response = acme_client.post("/admin/login/?next=/admin/", {"username": ALICE, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    (event,) = _events_in(acme, heads["acme"])
    alice = User.objects.get(username=ALICE)
    assert (event.verb, event.actor_type, event.actor_id, event.actor_label) == (
        "auth.login_succeeded",
        "user",
        str(alice.pk),
        ALICE,
    )
    assert (event.target_type, event.target_id, event.data) == ("user", str(alice.pk), {"ip": "127.0.0.1"})
    assert event.correlation_id == response["X-Request-ID"]
    assert _heads(acme, beta) == {**heads, "acme": heads["acme"] + 1}


def test_a_failed_admin_login_is_audited_with_the_username_but_never_the_password(
    acme: Tenant, acme_client: Client
) -> None:
    connection.set_tenant(acme)
    start, _ = chain_head()
    connection.set_schema_to_public()
    response = acme_client.post("/admin/login/?next=/admin/", {"username": ALICE, "password": WRONG_PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in acme_client.session
    (event,) = _events_in(acme, start)
    assert (event.verb, event.actor_type, event.actor_id, event.actor_label) == ("auth.login_failed", "user", "", ALICE)
    assert (event.target_type, event.target_id) == ("user", "")
    assert event.data == {"username": ALICE, "ip": "127.0.0.1"}
    assert WRONG_PASSWORD not in event.body and "password" not in json.loads(event.body)["data"]


def test_a_login_to_another_tenants_admin_fails_and_is_audited_there_only(
    acme: Tenant, beta: Tenant, beta_client: Client
) -> None:
    heads = _heads(acme, beta)
    response = beta_client.post("/admin/login/?next=/admin/", {"username": ALICE, "password": PASSWORD})
    assert response.status_code == 200
    (event,) = _events_in(beta, heads["beta"])
    assert (event.verb, event.data["username"]) == ("auth.login_failed", ALICE)
    assert _heads(acme, beta) == {**heads, "beta": heads["beta"] + 1}


def test_adding_a_user_in_the_tenant_admin_is_audited(acme: Tenant, beta: Tenant, acme_client: Client) -> None:
    _login_as(acme_client, acme, ALICE)
    heads = _heads(acme, beta)
    response = acme_client.post(
        "/admin/auth/user/add/",
        {"username": "carol@acme.example", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.set_tenant(acme)
    carol = User.objects.get(username="carol@acme.example")
    alice = User.objects.get(username=ALICE)
    (event,) = _events_in(acme, heads["acme"])
    assert (event.verb, event.actor_id, event.actor_label) == ("admin.added", str(alice.pk), ALICE)
    assert (event.target_type, event.target_id) == ("auth.user", str(carol.pk))
    assert event.data["object"] == "carol@acme.example" and event.data["change"] == [{"added": {}}]
    assert event.correlation_id == response["X-Request-ID"]
    assert PASSWORD not in event.body
    assert _heads(acme, beta) == {**heads, "acme": heads["acme"] + 1}


def test_changing_a_users_roles_in_the_tenant_admin_is_audited(acme: Tenant, acme_client: Client) -> None:
    _login_as(acme_client, acme, ALICE)
    connection.set_tenant(acme)
    carol = User.objects.create_user("carol@acme.example", "carol@acme.example", PASSWORD)
    start, _ = chain_head()
    form = member_change_form(carol, roles=["reviewer"])
    connection.set_schema_to_public()
    response = acme_client.post(f"/admin/auth/user/{carol.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    roles, changed = _events_in(acme, start)
    assert (roles.verb, roles.actor_label, roles.target_type, roles.target_id) == (
        "user.roles_changed",
        ALICE,
        "user",
        str(carol.pk),
    )
    assert roles.data == {"username": "carol@acme.example", "from": [], "to": ["reviewer"]}
    assert (changed.verb, changed.target_type, changed.target_id) == ("admin.changed", "auth.user", str(carol.pk))
    assert changed.data["change"] == [{"changed": {"fields": ["Roles"]}}]
    carol.refresh_from_db()
    assert list(carol.groups.values_list("name", flat=True)) == ["reviewer"] and carol.is_staff


def test_a_reviewer_cannot_add_users_and_nothing_is_audited(acme: Tenant, acme_client: Client) -> None:
    _login_as(acme_client, acme, RITA)
    connection.set_tenant(acme)
    start, _ = chain_head()
    connection.set_schema_to_public()
    response = acme_client.post(
        "/admin/auth/user/add/",
        {"username": "mallory@acme.example", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 403
    assert _events_in(acme, start) == []
    assert not User.objects.filter(username="mallory@acme.example").exists()
