"""History of governed models (django-simple-history): who changed what and why, kept for
tenants' limits and LLM connections (public schema), role assignments, credentials, endpoints
and event sources (tenants' schemas); never a secret; no revert that would bypass a service."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User
from django.test import Client

from agents.integrations.services import credential_create, endpoint_create
from agents.models import Credential, Endpoint, EventSource
from config.connection import connection
from governance.actors import Actor
from governance.models import RoleAssignment
from governance.roles import user_roles_set
from tenants import connections
from tenants.models import Domain, LLMConnection, Tenant
from tests.conftest import ALICE, OTTO, PASSWORD

from .conftest import member_change_form

CAROL = "carol@acme.example"
TENANT_CHANGE = "/admin/tenants/tenant/{}/change/"


@pytest.fixture
def otto(public_client: Client) -> Client:
    public_client.force_login(User.objects.get(username=OTTO))
    return public_client


def _tenant_form(tenant: Tenant, **values: str) -> dict[str, str]:
    domain = Domain.objects.get(tenant=tenant)
    form = {
        "name": tenant.name,
        "tier": tenant.tier,
        "limit_overrides": json.dumps(tenant.limit_overrides),
        "domains-TOTAL_FORMS": "1",
        "domains-INITIAL_FORMS": "1",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "domains-0-id": str(domain.pk),
        "domains-0-tenant": str(tenant.pk),
        "_save": "Save",
    }
    return {**form, **values}


# ------------------------------------------------------------------- tenants' limits
def test_a_limits_change_in_the_operators_admin_is_kept_with_who_and_why(otto: Client, acme: Tenant) -> None:
    response = otto.post(
        TENANT_CHANGE.format(acme.pk),
        _tenant_form(acme, limit_overrides='{"max_agents": 40}', history_change_reason="ticket OPS-12: more agents"),
    )

    assert response.status_code == 302, response.content[:500]
    record = acme.history.latest()
    assert record.limit_overrides == {"max_agents": 40} and record.history_type == "~"
    assert record.history_user is not None and record.history_user.username == OTTO
    assert record.history_change_reason == "ticket OPS-12: more agents"
    previous = record.prev_record
    assert previous is not None and previous.limit_overrides == acme.limit_overrides
    page = otto.get(f"/admin/tenants/tenant/{acme.pk}/history/")
    assert page.status_code == 200 and "ticket OPS-12: more agents" in page.content.decode()


def test_the_change_form_requires_a_reason_and_changes_nothing_without_one(otto: Client, acme: Tenant) -> None:
    records = acme.history.count()
    form = otto.get(TENANT_CHANGE.format(acme.pk)).content.decode()
    assert "Reason for this change" in form

    response = otto.post(TENANT_CHANGE.format(acme.pk), _tenant_form(acme, limit_overrides='{"max_agents": 40}'))

    assert response.status_code == 200
    assert "history_change_reason" in response.context["adminform"].form.errors
    assert Tenant.objects.get(pk=acme.pk).limit_overrides == acme.limit_overrides
    assert acme.history.count() == records


def test_reverting_from_a_history_page_is_refused(otto: Client, acme: Tenant) -> None:
    record = acme.history.latest()
    url = f"/admin/tenants/tenant/{acme.pk}/history/{record.history_id}/"

    assert otto.get(url).status_code == 200
    assert otto.post(url, _tenant_form(acme, name="Reverted")).status_code == 403
    assert Tenant.objects.get(pk=acme.pk).name == acme.name


# ------------------------------------------------------------------- LLM connections
def test_a_connections_history_never_holds_its_key(otto: Client) -> None:
    secret = "sk-history-must-not-keep-this"
    operator = Actor.operator("tester")
    connections.llm_connection_create(
        name="house", base_url="https://llm.example/v1", api_key_env="HOUSE_KEY", allowed_models=["m"], actor=operator
    )
    connections.llm_connection_key_set(name="house", api_key=secret, actor=operator)
    conn = LLMConnection.objects.get(name="house")

    history_fields = {f.name for f in conn.history.model._meta.fields}
    assert "api_key_encrypted" not in history_fields
    rows = list(conn.history.values())
    assert len(rows) == 2 and all(conn.api_key_encrypted not in json.dumps(row, default=str) for row in rows)
    assert all(secret not in json.dumps(row, default=str) for row in rows)

    form = {
        "base_url": "https://llm.example/v2",
        "api_key_env": "HOUSE_KEY",
        "allowed_models": "m",
        "timeout_seconds": "20",
        "enabled": "on",
        "history_change_reason": "moved to v2",
        "_save": "Save",
    }
    assert otto.post(f"/admin/tenants/llmconnection/{conn.pk}/change/", form).status_code == 302
    record = conn.history.latest()
    assert record.base_url == "https://llm.example/v2" and record.history_change_reason == "moved to v2"
    assert record.history_user.username == OTTO


# ------------------------------------------------------------------- role assignments
def test_role_grants_and_revocations_in_the_tenant_admin_are_records_with_who(
    in_acme: Tenant, acme_client: Client
) -> None:
    carol = User.objects.create_user(CAROL, CAROL, PASSWORD)
    assert acme_client.login(username=ALICE, password=PASSWORD)

    given = acme_client.post(f"/admin/auth/user/{carol.pk}/change/", member_change_form(carol, roles=["reviewer"]))
    connection.set_tenant(in_acme)
    taken = acme_client.post(f"/admin/auth/user/{carol.pk}/change/", member_change_form(carol, roles=[]))
    connection.set_tenant(in_acme)

    assert given.status_code == 302 and taken.status_code == 302
    records = list(RoleAssignment.history.filter(user_id=carol.pk).order_by("history_id"))
    assert [(r.role, r.history_type, r.history_user.username) for r in records] == [
        ("reviewer", "+", ALICE),
        ("reviewer", "-", ALICE),
    ]
    assert not RoleAssignment.objects.filter(user=carol).exists()
    page = acme_client.get(f"/admin/governance/roleassignment/?q={CAROL}")
    assert page.status_code == 200


def test_role_assignments_follow_the_groups_whatever_changes_them(in_acme: Tenant) -> None:
    carol = User.objects.create_user(CAROL, CAROL, PASSWORD)
    viewer, reviewer = Group.objects.get(name="viewer"), Group.objects.get(name="reviewer")
    other = Group.objects.create(name="not-a-role")

    user_roles_set(user=carol, roles=["viewer"], actor=None)
    reviewer.user_set.add(carol)  # the reverse side
    carol.groups.add(other)
    assert set(RoleAssignment.objects.filter(user=carol).values_list("role", flat=True)) == {"viewer", "reviewer"}

    carol.groups.clear()

    assert not RoleAssignment.objects.filter(user=carol).exists()
    removed = RoleAssignment.history.filter(user_id=carol.pk, history_type="-")
    assert sorted(removed.values_list("role", flat=True)) == ["reviewer", "viewer"]
    assert viewer.pk != reviewer.pk


def test_every_role_held_has_its_assignment_including_the_provisioned_admin(in_acme: Tenant) -> None:
    held = set(
        User.groups.through.objects.filter(
            group__name__in=("admin", "agent_manager", "reviewer", "viewer")
        ).values_list("user_id", "group__name")
    )

    assert held and set(RoleAssignment.objects.values_list("user_id", "role")) == held


def test_a_record_written_to_a_tenants_schema_from_the_public_domain_names_no_public_user(
    public_client: Client,
) -> None:
    """The operator provisions over the API: the new admin's role assignment lives in the new
    schema, where the operator's id would name some other user."""
    otto_api = Client(HTTP_HOST="localhost")
    otto_api.force_login(User.objects.get(username=OTTO))
    body = {
        "name": "Gamma",
        "domain": "gamma.localhost",
        "tier": "starter",
        "admin_email": "gina@gamma.example",
        "admin_password": PASSWORD,
    }

    response = otto_api.post("/api/v1/tenants/", json.dumps(body), content_type="application/json")

    assert response.status_code == 201, response.content
    connection.set_tenant(Tenant.objects.get(schema_name="gamma"))
    try:
        record = RoleAssignment.history.get(role="admin")
        assert record.history_type == "+" and record.history_user_id is None
    finally:
        connection.set_schema_to_public()
    tenant_record = Tenant.objects.get(schema_name="gamma").history.latest()
    assert tenant_record.history_user.username == OTTO  # the public row: the operator


# ------------------------------------------------------------------- integrations
def test_credentials_endpoints_and_event_sources_keep_history_without_their_secrets(
    in_acme: Tenant, settings: Any
) -> None:
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]
    for model, secret_field in ((Credential, "secret"), (Endpoint, "signing_secret"), (EventSource, "secret_token")):
        fields = {f.name for f in model.history.model._meta.fields}
        assert secret_field not in fields and "name" in fields, model

    actor = Actor.operator("tester")
    secret = "history-credential-secret-value"
    credential_create(name="crm", kind="bearer", secret=secret, actor=actor)
    endpoint_create(
        name="crm-hook",
        url="http://127.0.0.1:9/hooks",
        kinds=["restart"],
        signing_secret="sixteen-characters-at-least",
        credential="crm",
        actor=actor,
    )
    credential_row = Credential.history.values().get()
    endpoint_row = Endpoint.history.values().get()
    assert credential_row["name"] == "crm" and credential_row["history_type"] == "+"
    assert endpoint_row["url"] == "http://127.0.0.1:9/hooks"
    dumped = json.dumps([credential_row, endpoint_row], default=str)
    assert secret not in dumped and "sixteen-characters-at-least" not in dumped


def test_the_migration_records_the_roles_held_before_history_was_kept(in_acme: Tenant) -> None:
    migration = importlib.import_module("governance.migrations.0008_history")
    held = set(RoleAssignment.objects.values_list("user_id", "role"))
    RoleAssignment.objects.all().delete()
    RoleAssignment.history.all().delete()

    migration.role_assignments_record(django_apps, None)

    assert set(RoleAssignment.objects.values_list("user_id", "role")) == held
    records = RoleAssignment.history.all()
    assert {(r.user_id, r.role, r.history_type) for r in records} == {(u, role, "+") for u, role in held}
    assert {r.history_change_reason for r in records} == {"held before history was kept"}
