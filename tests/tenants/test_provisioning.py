"""Provisioning that succeeds: through the warm pool, through the migrations fallback, with and
without an admin password."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from config.connection import connection
from governance.verification import audit_chain_verify
from tenants.models import Domain, Tenant, TenantStatus
from tests.conftest import PASSWORD, host_client
from tests.tenants.conftest import Provision
from tests.tenants.stored import audit_head, audit_since, in_schema, schemas, spare_schemas, user_in, usernames


def _oldest_spare() -> Tenant:
    return Tenant.objects.filter(status=TenantStatus.SPARE).order_by("created_at", "pk").first()


def test_provisioning_claims_the_oldest_spare_and_renames_its_schema(provision: Provision) -> None:
    spare = _oldest_spare()
    spares_before = spare_schemas()

    result = provision()

    assert result.from_pool is True
    assert result.tenant.pk == spare.pk and result.tenant.schema_name == "gamma"
    assert "migrate" not in result.timings_ms and result.timings_ms["claim"] <= result.timings_ms["total"]
    assert len(spare_schemas()) == len(spares_before) - 1
    assert spare.pk not in spare_schemas()
    stored = Tenant.objects.get(pk=spare.pk)
    assert (stored.schema_name, stored.name, stored.tier, stored.status) == (
        "gamma",
        "Gamma",
        "professional",
        TenantStatus.ACTIVE,
    )
    in_catalog = schemas()
    assert "gamma" in in_catalog and spare.schema_name not in in_catalog
    assert list(Domain.objects.filter(tenant=stored).values_list("domain", "is_primary")) == [("gamma.localhost", True)]
    assert connection.schema_name == "public"


def test_provisioned_admin_is_staff_in_the_admin_group_with_the_given_password(provision: Provision) -> None:
    result = provision()

    assert result.admin_username == "gina@gamma.example"
    assert result.invitation_url is None
    admin, roles = user_in("gamma", "gina@gamma.example")
    assert roles == ["admin"]
    assert admin.is_staff and admin.is_active and not admin.is_superuser
    assert admin.email == "gina@gamma.example"
    assert admin.check_password(PASSWORD)
    assert usernames("gamma") == {"gina@gamma.example"}


def test_provisioning_is_audited_in_the_new_tenants_chain_and_in_publics(provision: Provision) -> None:
    public_seq = audit_head("public")

    result = provision()

    expected = {
        "name": "Gamma",
        "tier": "professional",
        "domain": "gamma.localhost",
        "admin": "gina@gamma.example",
        "from_pool": True,
        "demo": False,
    }
    [own] = audit_since("gamma", 0, verb="tenant.provisioned")
    assert (own.target_type, own.target_id, own.data) == ("tenant", "gamma", expected)
    [public] = audit_since("public", public_seq, verb="tenant.provisioned")
    assert (public.target_type, public.target_id, public.data) == ("tenant", "gamma", expected)
    assert own.correlation_id == public.correlation_id
    with in_schema(result.tenant.schema_name):
        report = audit_chain_verify()
    assert report.ok and report.head_hash == audit_since("gamma", 0)[-1].hash


def test_new_tenants_admin_can_log_in_on_its_domain(provision: Provision) -> None:
    provision()
    client = host_client("gamma.localhost")

    response = client.post(
        "/admin/login/?next=/admin/", {"username": "gina@gamma.example", "password": PASSWORD, "next": "/admin/"}
    )

    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert [e.data for e in audit_since("gamma", 0, verb="auth.login_succeeded")] == [{"ip": "127.0.0.1"}]


@pytest.mark.usefixtures("empty_pool")
def test_provisioning_with_an_empty_pool_migrates_a_new_schema_and_still_succeeds(provision: Provision) -> None:
    schemas_before = schemas()
    assert spare_schemas() == {}

    result = provision()

    assert result.from_pool is False
    assert spare_schemas() == {}
    timings = result.timings_ms
    assert timings["migrate"] > 0 and timings["migrate"] + timings["claim"] <= timings["total"]
    assert schemas() - schemas_before == {"gamma"}
    tenant = Tenant.objects.get(schema_name="gamma")
    assert tenant.status == TenantStatus.ACTIVE and tenant.domains.get().domain == "gamma.localhost"
    _, roles = user_in("gamma", "gina@gamma.example")
    assert roles == ["admin"]
    [event] = audit_since("gamma", 0, verb="tenant.provisioned")
    assert event.data["from_pool"] is False


def test_provisioning_without_a_password_leaves_it_unusable_and_returns_an_invitation(provision: Provision) -> None:
    result = provision(admin_password=None)

    admin, _ = user_in("gamma", "gina@gamma.example")
    assert not admin.has_usable_password()
    port = settings.VIGIL_HTTP_PORT
    assert result.invitation_url is not None
    assert result.invitation_url.startswith(f"http://gamma.localhost:{port}/invite/")
    response = host_client("gamma.localhost").post(
        "/admin/login/", {"username": "gina@gamma.example", "password": "", "next": "/admin/"}
    )
    assert response.status_code == 200 and "sessionid" not in response.cookies


def test_demo_provisioning_also_creates_a_reviewer_and_a_viewer(provision: Provision) -> None:
    result = provision(demo=True)

    assert result.demo_users == ["reviewer@gamma.localhost", "viewer@gamma.localhost"]
    assert usernames("gamma") == {"gina@gamma.example", "reviewer@gamma.localhost", "viewer@gamma.localhost"}
    assert user_in("gamma", "reviewer@gamma.localhost")[1] == ["reviewer"]
    assert user_in("gamma", "viewer@gamma.localhost")[1] == ["viewer"]


def test_provision_tenant_command_reports_the_warm_pool_path_and_the_admin(db: None) -> None:
    spares_before = len(spare_schemas())
    out = StringIO()

    call_command(
        "provision_tenant",
        "--name",
        "Delta Corp",
        "--domain",
        "delta.localhost",
        "--tier",
        "enterprise",
        "--admin-email",
        "dan@delta.example",
        "--admin-password",
        PASSWORD,
        stdout=out,
    )

    text = out.getvalue()
    assert "Provisioned 'Delta Corp': schema delta, domain delta.localhost, tier enterprise via warm pool" in text
    assert "Admin: dan@delta.example" in text and "Invitation" not in text
    assert len(spare_schemas()) == spares_before - 1
    tenant = Tenant.objects.get(schema_name="delta")
    assert (tenant.name, tenant.tier, tenant.status) == ("Delta Corp", "enterprise", TenantStatus.ACTIVE)
    [event] = audit_since("delta", 0, verb="tenant.provisioned")
    assert event.actor_type == "system" and event.actor_label.startswith("operator:")


def test_provision_tenant_command_without_a_password_prints_a_one_time_invitation_link(db: None) -> None:
    out = StringIO()

    call_command(
        "provision_tenant",
        "--name",
        "Delta",
        "--domain",
        "delta.localhost",
        "--admin-email",
        "dan@delta.example",
        stdout=out,
    )

    [line] = [line for line in out.getvalue().splitlines() if line.startswith("Invitation")]
    assert f"http://delta.localhost:{settings.VIGIL_HTTP_PORT}/invite/" in line
    assert Tenant.objects.get(schema_name="delta").tier == "free"
    assert not user_in("delta", "dan@delta.example")[0].has_usable_password()


@pytest.mark.usefixtures("empty_pool")
def test_provision_tenant_command_says_when_it_had_to_migrate(db: None) -> None:
    out = StringIO()

    call_command(
        "provision_tenant",
        "--name",
        "Delta",
        "--domain",
        "delta.localhost",
        "--admin-email",
        "dan@delta.example",
        "--admin-password",
        PASSWORD,
        stdout=out,
    )

    assert "via migrations (pool was empty)" in out.getvalue()
    assert "delta" in schemas() and spare_schemas() == {}
