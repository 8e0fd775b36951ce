"""The tenant admin shows the audit chain and refuses to change it."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from governance.models import AuditEvent
from tenants.models import Tenant
from tests.conftest import ALICE

from .conftest import chain_head, record


def _as_alice(client: Client, acme: Tenant) -> AuditEvent:
    """Log alice in on acme and return a fresh event of acme's chain."""
    connection.set_tenant(acme)
    start, _ = chain_head()
    record("test.admin_view", data={"marker": "visible-in-admin"})
    client.force_login(User.objects.get(username=ALICE))
    event = AuditEvent.objects.get(seq=start + 1)
    connection.set_schema_to_public()
    return event


def test_the_audit_list_renders_for_the_tenant_admin(acme: Tenant, acme_client: Client) -> None:
    event = _as_alice(acme_client, acme)
    response = acme_client.get("/admin/governance/auditevent/")
    assert response.status_code == 200
    assert response.context["cl"].result_list[0].seq >= event.seq
    assert b"test.admin_view" in response.content
    assert b"/admin/governance/auditevent/add/" not in response.content


def test_an_audit_event_renders_read_only(acme: Tenant, acme_client: Client) -> None:
    event = _as_alice(acme_client, acme)
    response = acme_client.get(f"/admin/governance/auditevent/{event.seq}/change/")
    assert response.status_code == 200
    assert b"visible-in-admin" in response.content
    assert b'name="_save"' not in response.content


def test_the_audit_admin_refuses_add(acme: Tenant, acme_client: Client) -> None:
    _as_alice(acme_client, acme)
    connection.set_tenant(acme)
    head = chain_head()
    connection.set_schema_to_public()
    assert acme_client.get("/admin/governance/auditevent/add/").status_code == 403
    assert acme_client.post("/admin/governance/auditevent/add/", {"verb": "forged"}).status_code == 403
    connection.set_tenant(acme)
    assert chain_head() == head


def test_the_audit_admin_refuses_change(acme: Tenant, acme_client: Client) -> None:
    event = _as_alice(acme_client, acme)
    response = acme_client.post(f"/admin/governance/auditevent/{event.seq}/change/", {"verb": "forged"})
    assert response.status_code == 403
    connection.set_tenant(acme)
    assert AuditEvent.objects.get(seq=event.seq).body == event.body


def test_the_audit_admin_refuses_delete(acme: Tenant, acme_client: Client) -> None:
    event = _as_alice(acme_client, acme)
    assert acme_client.post(f"/admin/governance/auditevent/{event.seq}/delete/", {"post": "yes"}).status_code == 403
    connection.set_tenant(acme)
    assert AuditEvent.objects.filter(seq=event.seq).exists()


def test_the_audit_list_offers_no_bulk_delete(acme: Tenant, acme_client: Client) -> None:
    event = _as_alice(acme_client, acme)
    assert b"delete_selected" not in acme_client.get("/admin/governance/auditevent/").content
    response = acme_client.post(
        "/admin/governance/auditevent/", {"action": "delete_selected", "_selected_action": [event.seq], "post": "yes"}
    )
    assert response.status_code == 200  # not an action here: the list just renders again
    connection.set_tenant(acme)
    assert AuditEvent.objects.filter(seq=event.seq).exists()


def test_the_audit_list_needs_a_logged_in_staff_user(acme: Tenant, acme_client: Client) -> None:
    response = acme_client.get("/admin/governance/auditevent/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_session_from_one_tenant_does_not_open_anothers_audit_list(
    acme: Tenant, acme_client: Client, beta_client: Client
) -> None:
    _as_alice(acme_client, acme)
    beta_client.cookies = acme_client.cookies
    response = beta_client.get("/admin/governance/auditevent/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
