"""Suspend, resume and delete: what the tenant's domain answers, what is stored, what is audited."""

from __future__ import annotations

import pytest
from django.test import Client

from governance.actors import Actor
from governance.verification import audit_chain_verify
from tenants.exceptions import ProvisioningError, TenantNotFound, TenantStateError
from tenants.models import Domain, Tenant, TenantStatus
from tenants.services import tenant_delete, tenant_resume, tenant_suspend
from tests.conftest import PASSWORD, host_client
from tests.tenants.stored import audit_head, audit_since, in_schema, schemas, user_in


def test_suspended_tenants_domain_answers_403(acme: Tenant, acme_client: Client, operator: Actor) -> None:
    tenant = tenant_suspend(schema_name="acme", actor=operator)

    response = acme_client.get("/admin/login/")

    assert tenant.status == TenantStatus.SUSPENDED
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.SUSPENDED
    assert response.status_code == 403
    assert b"This tenant is suspended" in response.content


def test_a_suspended_tenants_users_cannot_log_in(acme: Tenant, acme_client: Client, operator: Actor) -> None:
    tenant_suspend(schema_name="acme", actor=operator)
    acme_seq = audit_head("acme")

    response = acme_client.post("/admin/login/", {"username": "alice@acme.example", "password": PASSWORD})

    assert response.status_code == 403 and "sessionid" not in response.cookies
    assert audit_since("acme", acme_seq) == []


def test_suspending_one_tenant_leaves_the_others_answering(beta_client: Client, operator: Actor) -> None:
    tenant_suspend(schema_name="acme", actor=operator)

    assert beta_client.get("/admin/login/").status_code == 200
    assert Tenant.objects.get(schema_name="beta").status == TenantStatus.ACTIVE


def test_suspension_is_audited_in_the_tenants_chain_and_in_publics(acme: Tenant, operator: Actor) -> None:
    acme_seq, public_seq = audit_head("acme"), audit_head("public")

    tenant_suspend(schema_name="acme", actor=operator)

    for schema, seq in (("acme", acme_seq), ("public", public_seq)):
        [event] = audit_since(schema, seq)
        assert (event.verb, event.target_type, event.target_id) == ("tenant.suspended", "tenant", "acme")
        assert event.data == {"from": "active", "to": "suspended"}
        assert (event.actor_type, event.actor_label) == ("system", "operator:tester")
    with in_schema("acme"):
        assert audit_chain_verify().ok


def test_resumed_tenants_domain_answers_200_again(acme: Tenant, acme_client: Client, operator: Actor) -> None:
    tenant_suspend(schema_name="acme", actor=operator)
    acme_seq, public_seq = audit_head("acme"), audit_head("public")

    tenant = tenant_resume(schema_name="acme", actor=operator)

    assert tenant.status == TenantStatus.ACTIVE
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE
    assert acme_client.get("/admin/login/").status_code == 200
    for schema, seq in (("acme", acme_seq), ("public", public_seq)):
        [event] = audit_since(schema, seq)
        assert (event.verb, event.target_id, event.data) == (
            "tenant.resumed",
            "acme",
            {"from": "suspended", "to": "active"},
        )


def test_suspending_twice_is_a_409_state_error_and_changes_nothing(acme: Tenant, operator: Actor) -> None:
    tenant_suspend(schema_name="acme", actor=operator)
    acme_seq, public_seq = audit_head("acme"), audit_head("public")

    with pytest.raises(TenantStateError) as conflict:
        tenant_suspend(schema_name="acme", actor=operator)

    assert conflict.value.status == 409 and conflict.value.code == "tenant_state_conflict"
    assert str(conflict.value) == "tenant 'acme' is suspended, not active"
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.SUSPENDED
    assert audit_since("acme", acme_seq) == [] and audit_since("public", public_seq) == []


def test_resuming_an_active_tenant_is_a_409_state_error(acme: Tenant, operator: Actor) -> None:
    public_seq = audit_head("public")

    with pytest.raises(TenantStateError, match="tenant 'acme' is active, not suspended") as conflict:
        tenant_resume(schema_name="acme", actor=operator)

    assert conflict.value.status == 409
    assert Tenant.objects.get(pk=acme.pk).status == TenantStatus.ACTIVE
    assert audit_since("public", public_seq) == []


@pytest.mark.parametrize("schema", ["nope", "public"])
def test_suspending_an_unknown_or_public_schema_is_a_404(db: None, operator: Actor, schema: str) -> None:
    with pytest.raises(TenantNotFound, match=f"no tenant with schema '{schema}'") as missing:
        tenant_suspend(schema_name=schema, actor=operator)

    assert missing.value.status == 404
    assert Tenant.objects.get(schema_name="public").status == TenantStatus.ACTIVE


def test_a_spare_cannot_be_suspended(db: None, operator: Actor) -> None:
    spare = Tenant.objects.filter(status=TenantStatus.SPARE).first()

    with pytest.raises(TenantNotFound):
        tenant_suspend(schema_name=spare.schema_name, actor=operator)

    assert Tenant.objects.get(pk=spare.pk).status == TenantStatus.SPARE


def test_delete_with_a_wrong_confirmation_is_refused_and_drops_nothing(acme: Tenant, operator: Actor) -> None:
    public_seq = audit_head("public")

    with pytest.raises(ProvisioningError, match="confirmation 'acm' does not match schema 'acme'"):
        tenant_delete(schema_name="acme", confirm="acm", actor=operator)

    assert "acme" in schemas()
    assert Tenant.objects.filter(pk=acme.pk, status=TenantStatus.ACTIVE).exists()
    assert Domain.objects.filter(domain="acme.localhost", tenant=acme).exists()
    assert user_in("acme", "alice@acme.example")[1] == ["admin"]
    assert audit_since("public", public_seq) == []


def test_delete_drops_schema_row_and_domain(acme: Tenant, operator: Actor) -> None:
    tenant_delete(schema_name="acme", confirm="acme", actor=operator)

    assert "acme" not in schemas()
    assert not Tenant.objects.filter(pk=acme.pk).exists()
    assert not Domain.objects.filter(domain="acme.localhost").exists()
    assert host_client("acme.localhost").get("/admin/login/").status_code == 404
    assert Tenant.objects.filter(schema_name="beta", status=TenantStatus.ACTIVE).exists()


def test_delete_keeps_the_tenants_audit_head_hash_in_the_public_chain(acme: Tenant, operator: Actor) -> None:
    with in_schema("acme"):
        chain = audit_chain_verify()
    public_seq = audit_head("public")

    tenant_delete(schema_name="acme", confirm="acme", actor=operator)

    [event] = audit_since("public", public_seq)
    assert (event.verb, event.target_type, event.target_id) == ("tenant.deleted", "tenant", "acme")
    assert event.data == {
        "name": "Acme",
        "domains": ["acme.localhost"],
        "audit_events": chain.events,
        "audit_head_hash": chain.head_hash,
    }
    assert chain.ok and chain.events > 0


def test_a_suspended_tenant_can_be_deleted(acme: Tenant, operator: Actor) -> None:
    tenant_suspend(schema_name="acme", actor=operator)

    tenant_delete(schema_name="acme", confirm="acme", actor=operator)

    assert "acme" not in schemas() and not Tenant.objects.filter(pk=acme.pk).exists()
