"""Tenants never see each other: rows, logins and hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from config.connection import connection
from governance.actors import Actor
from governance.services import audit_record
from tenants.models import Tenant
from tests.conftest import PASSWORD, host_client
from tests.tenants.stored import audit_head, audit_since, in_schema, usernames

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

LOGIN_ERROR = b"Please enter the correct username and password for a staff account"


def _log_in(client: Client, username: str) -> _MonkeyPatchedWSGIResponse:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD, "next": "/admin/"})


def test_a_user_made_in_acme_does_not_exist_in_beta(in_acme: Tenant, beta: Tenant) -> None:
    beta_users = usernames("beta")
    User.objects.create_user("mallory@acme.example", "mallory@acme.example", PASSWORD)

    assert User.objects.filter(username="mallory@acme.example").exists()
    assert usernames("beta") == beta_users
    assert "mallory@acme.example" not in usernames("beta")
    assert "mallory@acme.example" not in usernames("public")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM beta.auth_user WHERE username = %s", ["mallory@acme.example"])
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM acme.auth_user WHERE username = %s", ["mallory@acme.example"])
        assert cursor.fetchone()[0] == 1


def test_a_group_made_in_acme_does_not_exist_in_beta(in_acme: Tenant, beta: Tenant) -> None:
    Group.objects.create(name="auditors")
    assert Group.objects.filter(name="auditors").exists()

    with in_schema("beta"):
        assert not Group.objects.filter(name="auditors").exists()
        assert set(Group.objects.values_list("name", flat=True)) == {"admin", "agent_manager", "reviewer", "viewer"}


def test_an_audit_event_recorded_in_acme_is_not_in_betas_chain(in_acme: Tenant, beta: Tenant) -> None:
    beta_seq = audit_head("beta")

    audit_record(actor=Actor.system("tester"), verb="test.only_in_acme", target_type="test")

    assert [e.verb for e in audit_since("acme", 0, verb="test.only_in_acme")] == ["test.only_in_acme"]
    assert audit_since("beta", beta_seq) == []


def test_each_tenant_has_only_its_own_users(db: None) -> None:
    assert usernames("acme") == {"alice@acme.example", "rita@acme.example"}
    assert usernames("beta") == {"bob@beta.example"}
    assert usernames("public") == {"otto@vigil.example"}


def test_alice_can_log_in_to_acmes_admin(acme_client: Client) -> None:
    acme_seq = audit_head("acme")

    response = _log_in(acme_client, "alice@acme.example")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert "sessionid" in response.cookies
    page = acme_client.get("/admin/")
    assert page.status_code == 200 and page.context["user"].username == "alice@acme.example"
    [event] = audit_since("acme", acme_seq, verb="auth.login_succeeded")
    assert event.actor_label == "alice@acme.example"


@pytest.mark.parametrize(
    ("username", "home", "host"),
    [
        ("alice@acme.example", "acme", "beta.localhost"),
        ("bob@beta.example", "beta", "acme.localhost"),
        ("otto@vigil.example", "public", "acme.localhost"),
        ("alice@acme.example", "acme", "localhost"),
    ],
    ids=["alice-on-beta", "bob-on-acme", "otto-on-acme", "alice-on-public"],
)
def test_a_user_cannot_log_in_on_another_tenants_domain(db: None, username: str, home: str, host: str) -> None:
    schema = Tenant.objects.get(domains__domain=host).schema_name
    seq = audit_head(schema)
    client = host_client(host)

    response = _log_in(client, username)

    assert response.status_code == 200
    assert LOGIN_ERROR in response.content
    assert "sessionid" not in response.cookies
    assert client.get("/admin/").status_code == 302
    [event] = audit_since(schema, seq, verb="auth.login_failed")
    assert event.data["username"] == username
    assert audit_since(schema, seq, verb="auth.login_succeeded") == []
    assert username in usernames(home) and username not in usernames(schema)


def test_a_session_from_acme_is_not_honoured_on_beta(acme_client: Client) -> None:
    assert _log_in(acme_client, "alice@acme.example").status_code == 302
    session_cookie = acme_client.cookies["sessionid"].value
    beta_client = host_client("beta.localhost")
    beta_client.cookies["sessionid"] = session_cookie

    response = beta_client.get("/admin/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("host", ["nope.localhost", "acme.localhost.evil.example", "acme"])
def test_an_unknown_host_gets_404(db: None, host: str) -> None:
    response = host_client(host).get("/admin/login/")

    assert response.status_code == 404


def test_the_public_host_serves_the_operators_admin_where_otto_can_log_in(public_client: Client) -> None:
    public_seq = audit_head("public")

    response = _log_in(public_client, "otto@vigil.example")

    assert response.status_code == 302 and response["Location"] == "/admin/"
    page = public_client.get("/admin/")
    assert page.status_code == 200 and b"Vigil operators" in page.content
    assert page.context["user"].username == "otto@vigil.example"
    [event] = audit_since("public", public_seq, verb="auth.login_succeeded")
    assert event.actor_label == "otto@vigil.example"


def test_a_tenant_domain_does_not_serve_the_operators_admin(acme_client: Client) -> None:
    assert _log_in(acme_client, "alice@acme.example").status_code == 302

    assert acme_client.get("/admin/tenants/tenant/").status_code == 404
    assert b"Vigil operators" not in acme_client.get("/admin/").content


def test_acmes_admin_lists_only_acmes_users(acme_client: Client) -> None:
    assert _log_in(acme_client, "alice@acme.example").status_code == 302

    response = acme_client.get("/admin/auth/user/")

    assert response.status_code == 200
    listed = {user.username for user in response.context["cl"].result_list}
    assert listed == {"alice@acme.example", "rita@acme.example"}
    assert b"bob@beta.example" not in response.content and b"otto@vigil.example" not in response.content
