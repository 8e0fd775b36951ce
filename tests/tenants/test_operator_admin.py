"""The operators' admin on the public domain: the tenant list, suspend/resume actions, edits."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tenants.models import Domain, Tenant, TenantStatus
from tests.conftest import host_client
from tests.tenants.stored import audit_head, audit_since

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

CHANGELIST = "/admin/tenants/tenant/"


@pytest.fixture
def otto_client(public_client: Client) -> Client:
    public_client.force_login(User.objects.get(username="otto@vigil.example"))
    return public_client


def _action(client: Client, action: str, *tenants: Tenant) -> _MonkeyPatchedWSGIResponse:
    return client.post(
        CHANGELIST, {"action": action, "index": "0", "_selected_action": [str(t.pk) for t in tenants]}, follow=True
    )


def _change_form(tenant: Tenant, **values: str) -> dict[str, str]:
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
        "history_change_reason": "contract renewed",
        "_save": "Save",
    }
    return {**form, **values}


def test_tenant_list_shows_customer_tenants_with_tier_and_status(otto_client: Client) -> None:
    response = otto_client.get(CHANGELIST)

    assert response.status_code == 200
    listed = {t.schema_name: (t.tier, t.status) for t in response.context["cl"].result_list}
    assert listed == {"acme": ("starter", "active"), "beta": ("starter", "active")}
    content = response.content.decode()
    assert "acme.localhost" in content and "beta.localhost" in content
    assert "Starter" in content and "Active" in content
    for schema in Tenant.objects.filter(status=TenantStatus.SPARE).values_list("schema_name", flat=True):
        assert schema not in content


def test_tenant_list_needs_an_operator_login(public_client: Client) -> None:
    response = public_client.get(CHANGELIST)

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_spare_has_no_change_page(otto_client: Client) -> None:
    spare = Tenant.objects.filter(status=TenantStatus.SPARE).first()

    response = otto_client.get(f"{CHANGELIST}{spare.pk}/change/", follow=True)

    assert response.redirect_chain and response.redirect_chain[-1][0] == "/admin/"
    assert Tenant.objects.get(pk=spare.pk).status == TenantStatus.SPARE


def test_suspend_action_suspends_and_is_audited_with_the_operator(
    otto_client: Client, acme: Tenant, beta: Tenant
) -> None:
    acme_seq, public_seq = audit_head("acme"), audit_head("public")

    response = _action(otto_client, "suspend_selected", acme)

    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == ["Acme: suspended"]
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.SUSPENDED
    assert Tenant.objects.get(pk=beta.pk).status == TenantStatus.ACTIVE
    for schema, seq in (("acme", acme_seq), ("public", public_seq)):
        [event] = audit_since(schema, seq, verb="tenant.suspended")
        assert (event.target_id, event.actor_type, event.actor_label) == ("acme", "user", "otto@vigil.example")
    assert host_client("acme.localhost").get("/admin/login/").status_code == 403


def test_resume_action_resumes_and_is_audited(otto_client: Client, acme: Tenant) -> None:
    _action(otto_client, "suspend_selected", acme)
    public_seq = audit_head("public")

    response = _action(otto_client, "resume_selected", acme)

    assert [str(m) for m in response.context["messages"]] == ["Acme: resumed"]
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE
    [event] = audit_since("public", public_seq, verb="tenant.resumed")
    assert (event.target_id, event.actor_label) == ("acme", "otto@vigil.example")
    assert host_client("acme.localhost").get("/admin/login/").status_code == 200


def test_suspend_action_on_an_already_suspended_tenant_reports_the_conflict(
    otto_client: Client, acme: Tenant, beta: Tenant
) -> None:
    _action(otto_client, "suspend_selected", acme)
    public_seq = audit_head("public")

    response = _action(otto_client, "suspend_selected", acme, beta)

    assert sorted(str(m) for m in response.context["messages"]) == [
        "Acme: tenant 'acme' is suspended, not active",
        "Beta: suspended",
    ]
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.SUSPENDED
    assert Tenant.objects.get(pk=beta.pk).status == TenantStatus.SUSPENDED
    assert [e.target_id for e in audit_since("public", public_seq)] == ["beta"]


def test_editing_limit_overrides_with_an_unknown_key_shows_a_form_error_and_saves_nothing(
    otto_client: Client, acme: Tenant
) -> None:
    public_seq = audit_head("public")

    response = otto_client.post(
        f"{CHANGELIST}{acme.pk}/change/", _change_form(acme, name="Acme Renamed", limit_overrides='{"max_robots": 5}')
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "unknown limit 'max_robots'" in errors["limit_overrides"][0]
    assert "unknown limit &#x27;max_robots&#x27;" in response.content.decode()
    stored = Tenant.objects.get(pk=acme.pk)
    assert (stored.name, stored.limit_overrides) == ("Acme", {})
    assert audit_since("public", public_seq) == []


@pytest.mark.parametrize(
    "overrides", ['{"max_agents": -1}', '{"max_agents": true}', "[1, 2]"], ids=["negative", "bool", "not-an-object"]
)
def test_editing_limit_overrides_with_a_bad_value_shows_a_form_error(
    otto_client: Client, acme: Tenant, overrides: str
) -> None:
    response = otto_client.post(f"{CHANGELIST}{acme.pk}/change/", _change_form(acme, limit_overrides=overrides))

    assert response.status_code == 200 and response.context["adminform"].form.errors["limit_overrides"]
    assert Tenant.objects.get(pk=acme.pk).limit_overrides == {}


def test_editing_tier_and_overrides_saves_them_and_audits_the_change(otto_client: Client, acme: Tenant) -> None:
    public_seq = audit_head("public")

    response = otto_client.post(
        f"{CHANGELIST}{acme.pk}/change/", _change_form(acme, tier="professional", limit_overrides='{"max_agents": 75}')
    )

    assert response.status_code == 302 and response["Location"] == CHANGELIST
    stored = Tenant.objects.get(pk=acme.pk)
    assert (stored.tier, stored.limit_overrides, stored.status) == ("professional", {"max_agents": 75}, "active")
    [event] = audit_since("public", public_seq, verb="tenant.updated")
    assert event.target_id == "acme" and event.actor_label == "otto@vigil.example"
    assert event.data == {
        "tier": {"from": "starter", "to": "professional"},
        "limit_overrides": {"from": {}, "to": {"max_agents": 75}},
    }
    page = otto_client.get(f"{CHANGELIST}{acme.pk}/change/")
    assert b"max_agents=75" in page.content and b"runs_per_day=20,000" in page.content


def test_the_operators_admin_cannot_add_or_delete_tenants(otto_client: Client, acme: Tenant) -> None:
    assert otto_client.get(f"{CHANGELIST}add/").status_code == 403
    assert otto_client.post(f"{CHANGELIST}{acme.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Tenant.objects.filter(pk=acme.pk).exists()
