"""LLM connections in the operators' admin: added, changed and deleted through the same
services as the command, so validated and audited with the operator who did it."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from governance.actors import Actor
from tenants.connections import llm_connection_create
from tenants.models import LLMConnection, Tenant
from tests.tenants.stored import audit_head, audit_since

CHANGELIST = "/admin/tenants/llmconnection/"


@pytest.fixture
def otto_client(public_client: Client) -> Client:
    public_client.force_login(User.objects.get(username="otto@vigil.example"))
    return public_client


def _form(**values: Any) -> dict[str, Any]:
    form = {
        "name": "house",
        "base_url": "https://llm.example/v1",
        "api_key_env": "HOUSE_LLM_KEY",
        "allowed_models": "gpt-4o-mini,gpt-4o",
        "timeout_seconds": "15",
        "enabled": "on",
        "history_change_reason": "house model for support",
        "_save": "Save",
    }
    return {k: v for k, v in {**form, **values}.items() if v is not None}


def test_an_operator_adds_a_connection_for_chosen_tenants_and_it_is_audited_with_their_name(
    otto_client: Client, acme: Tenant
) -> None:
    public_seq = audit_head("public")

    response = otto_client.post(f"{CHANGELIST}add/", _form(tenants=[str(acme.pk)]))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    conn = LLMConnection.objects.get(name="house")
    assert (conn.base_url, conn.api_key_env, conn.allowed_models, conn.timeout_seconds) == (
        "https://llm.example/v1",
        "HOUSE_LLM_KEY",
        ["gpt-4o-mini", "gpt-4o"],
        15.0,
    )
    assert (conn.enabled, conn.available_to_all, [t.schema_name for t in conn.tenants.all()]) == (True, False, ["acme"])
    [event] = audit_since("public", public_seq, verb="llm_connection.created")
    assert (event.target_id, event.actor_type, event.actor_label) == ("house", "user", "otto@vigil.example")
    assert event.data["tenants"] == ["acme"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_key_env", "DATABASE_URL", "DATABASE_URL belongs to the application's own configuration"),
        ("api_key_env", "my key", "must be an environment variable name"),
        ("base_url", "https://me:secret@llm.example/v1", "must not carry credentials"),
        ("name", "House", "lowercase letters, digits and dashes"),
    ],
)
def test_the_add_form_refuses_a_bad_value_on_its_field_and_stores_nothing(
    otto_client: Client, field: str, value: str, message: str
) -> None:
    public_seq = audit_head("public")

    response = otto_client.post(f"{CHANGELIST}add/", _form(**{field: value}))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and message in errors[field][0]
    assert not LLMConnection.objects.filter(name="house").exists()
    assert audit_since("public", public_seq) == []


def test_changing_a_connection_audits_what_changed_and_keeps_its_name(
    otto_client: Client, acme: Tenant, beta: Tenant
) -> None:
    conn = llm_connection_create(
        name="house",
        base_url="https://llm.example/v1",
        api_key_env="HOUSE_LLM_KEY",
        allowed_models=["gpt-4o-mini"],
        tenants=["acme"],
        actor=Actor.operator("tester"),
    )
    public_seq = audit_head("public")

    response = otto_client.post(
        f"{CHANGELIST}{conn.pk}/change/",
        _form(name="renamed", allowed_models="gpt-4o-mini", timeout_seconds="20", enabled=None, tenants=[str(beta.pk)]),
    )

    assert response.status_code == 302
    conn.refresh_from_db()
    assert (conn.name, conn.enabled, [t.schema_name for t in conn.tenants.all()]) == ("house", False, ["beta"])
    [event] = audit_since("public", public_seq, verb="llm_connection.updated")
    assert event.data == {"enabled": {"from": True, "to": False}, "tenants": {"from": ["acme"], "to": ["beta"]}}
    assert event.actor_label == "otto@vigil.example"


def test_deleting_a_connection_in_the_admin_is_audited(otto_client: Client) -> None:
    conn = llm_connection_create(
        name="house",
        base_url="https://llm.example/v1",
        api_key_env="HOUSE_LLM_KEY",
        allowed_models=["gpt-4o-mini"],
        available_to_all=True,
        actor=Actor.operator("tester"),
    )
    public_seq = audit_head("public")

    response = otto_client.post(f"{CHANGELIST}{conn.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not LLMConnection.objects.filter(name="house").exists()
    [event] = audit_since("public", public_seq, verb="llm_connection.deleted")
    assert (event.target_id, event.actor_label) == ("house", "otto@vigil.example")


def test_the_connection_list_shows_each_connection_and_whom_it_serves(otto_client: Client) -> None:
    llm_connection_create(
        name="house",
        base_url="https://llm.example/v1",
        api_key_env="HOUSE_LLM_KEY",
        allowed_models=["gpt-4o-mini"],
        tenants=["beta"],
        actor=Actor.operator("tester"),
    )

    response = otto_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    assert "house" in content and "HOUSE_LLM_KEY" in content and "beta" in content


def test_the_connection_admin_needs_an_operator_login(public_client: Client) -> None:
    response = public_client.get(CHANGELIST)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
