"""Single sign-on against a real OpenID Connect provider (the npm oidc-provider run by node,
started by this module): the provider's settings per tenant, the code flow through
mozilla-django-oidc with the tenant's provider, users created in the right tenant with the
mapped roles, the tid check between tenants, and the provider's access tokens on the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from config.egress import EgressRefused
from config.secrets import secret_decrypt
from governance import access
from governance.models import AuditEvent, SsoProvider
from governance.sso import sso_provider_save
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE, BOB, RITA
from tests.governance.sso_support import (
    ACME_CLIENT,
    ACME_TID,
    ADA,
    BERT,
    BETA_CLIENT,
    BETA_TID,
    MAPPING,
    REMY,
    SECRETS,
    RunningProvider,
    provider_tokens,
    running_provider,
    sign_in_at_provider,
)

from .conftest import chain_head, events_after

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    with running_provider(tmp_path_factory.mktemp("idp")) as provider:
        yield provider


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    """The operator allows the tests' provider on 127.0.0.1."""
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]


def _configure(
    tenant: Tenant, idp: RunningProvider, *, client_id: str, tid: str, actor: str, mapping: Any = None
) -> SsoProvider:
    connection.set_tenant(tenant)
    provider = sso_provider_save(
        provider=SsoProvider(
            name="Company SSO",
            issuer=idp.issuer,
            client_id=client_id,
            tid=tid,
            role_mapping=MAPPING if mapping is None else mapping,
        ),
        client_secret=SECRETS[client_id],
        actor=User.objects.get(username=actor),
    )
    connection.set_schema_to_public()
    return provider


def _sso_login(client: Client, *, login: str) -> Any:
    """Click "Log in with SSO", sign in at the provider, come back: Vigil's last answer."""
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302, start.content
    back = sign_in_at_provider(start["Location"], login=login)
    return client.get(back[back.index("/oidc/callback/") :])


def _messages(client: Client) -> str:
    return client.get("/admin/login/").content.decode()


def test_the_login_page_offers_sso_only_when_the_tenant_has_an_enabled_provider(
    acme: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    assert "Log in with" not in client.get("/admin/login/").content.decode()

    provider = _configure(acme, idp, client_id=ACME_CLIENT, tid=ACME_TID, actor=ALICE)

    page = client.get("/admin/login/?next=/admin/agents/").content.decode()
    assert 'id="sso-login"' in page and "Log in with Company SSO" in page
    assert "/oidc/authenticate/?next=/admin/agents/" in page
    assert "Log in with" not in Client(HTTP_HOST="beta.localhost").get("/admin/login/").content.decode()
    connection.set_tenant(acme)
    SsoProvider.objects.filter(pk=provider.pk).update(enabled=False)
    connection.set_schema_to_public()
    assert "Log in with" not in client.get("/admin/login/").content.decode()


def test_first_sign_in_creates_the_user_in_this_tenant_with_the_mapped_roles_applied_at_every_sign_in(
    acme: Tenant, beta: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    provider = _configure(acme, idp, client_id=ACME_CLIENT, tid=ACME_TID, actor=ALICE)
    connection.set_tenant(acme)
    start = chain_head()[0]
    connection.set_schema_to_public()
    client = Client(HTTP_HOST="acme.localhost")

    landed = _sso_login(client, login=ADA)

    assert landed.status_code == 302 and landed["Location"] == "/admin/", landed.content
    index = client.get("/admin/")
    assert index.status_code == 200 and ADA in index.content.decode()
    connection.set_tenant(acme)
    ada = User.objects.get(username=ADA)
    assert (ada.email, ada.first_name, ada.is_staff, ada.has_usable_password()) == (ADA, "Ada", True, False)
    assert access.roles_of(ada) == {access.Role.ADMIN}
    verbs = [(e.verb, e.actor_label) for e in events_after(start)]
    assert ("sso.user_created", "sso") in verbs and ("sso.signed_in", ADA) in verbs
    assert ("user.roles_changed", ADA) in verbs and ("auth.login_succeeded", ADA) in verbs
    connection.set_tenant(beta)
    assert not User.objects.filter(username=ADA).exists()

    # The mapping changes: the next sign-in applies it.
    connection.set_tenant(acme)
    provider.role_mapping = {"groups": {"vigil-admins": "viewer"}}
    sso_provider_save(provider=provider, client_secret=None, actor=User.objects.get(username=ALICE))
    connection.set_schema_to_public()
    client = Client(HTTP_HOST="acme.localhost")
    assert _sso_login(client, login=ADA).status_code == 302
    connection.set_tenant(acme)
    ada = User.objects.get(username=ADA)
    assert access.roles_of(ada) == {access.Role.VIEWER}
    changed = [e for e in events_after(start) if e.verb == "user.roles_changed"][-1]
    assert (changed.data["from"], changed.data["to"]) == (["admin"], ["viewer"])

    # A person whose groups map to no role signs in but gets no admin.
    assert access.roles_of(User.objects.get(username=RITA)) == {access.Role.REVIEWER}
    connection.set_schema_to_public()
    remy = Client(HTTP_HOST="acme.localhost")
    _sso_login(remy, login=REMY)
    connection.set_tenant(acme)
    assert access.roles_of(User.objects.get(username=REMY)) == set()


def test_a_token_minted_for_tenant_a_never_signs_in_on_tenant_b(
    acme: Tenant, beta: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    # Beta's admin copies acme's provider and client; the provider even accepts beta's callback
    # for acme's client. What stops acme's people is the tid beta expects.
    _configure(beta, idp, client_id=ACME_CLIENT, tid=BETA_TID, actor=BOB)
    connection.set_tenant(beta)
    start = chain_head()[0]
    connection.set_schema_to_public()
    client = Client(HTTP_HOST="beta.localhost")

    refused = _sso_login(client, login=ADA)

    assert refused.status_code == 302 and refused["Location"] == "/admin/login/"
    assert "tid claim is not this tenant" in _messages(client)
    assert client.get("/admin/").status_code == 302
    connection.set_tenant(beta)
    assert not User.objects.filter(username=ADA).exists()
    refusal = [e for e in events_after(start) if e.verb == "sso.refused"]
    assert len(refusal) == 1 and "another tenant" in refusal[0].data["reason"]
    connection.set_tenant(acme)
    assert not User.objects.filter(username=ADA).exists()

    # Beta's own people (tid beta-org) sign in on beta's host.
    connection.set_schema_to_public()
    assert _sso_login(Client(HTTP_HOST="beta.localhost"), login=BERT)["Location"] == "/admin/"
    connection.set_tenant(beta)
    assert access.roles_of(User.objects.get(username=BERT)) == {access.Role.ADMIN}


def test_a_callback_this_browser_did_not_start_is_refused(
    acme: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    _configure(acme, idp, client_id=ACME_CLIENT, tid=ACME_TID, actor=ALICE)
    started = Client(HTTP_HOST="acme.localhost")
    back = sign_in_at_provider(started.get("/oidc/authenticate/")["Location"], login=ADA)
    other = Client(HTTP_HOST="acme.localhost")  # an attacker's browser, given the victim's link

    answer = other.get(back[back.index("/oidc/callback/") :])

    assert answer.status_code == 302 and answer["Location"] == "/admin/login/"
    assert "not started here" in _messages(other)
    connection.set_tenant(acme)
    assert not User.objects.filter(username=ADA).exists()


def test_the_providers_access_token_calls_the_api_as_the_mapped_user_on_its_own_tenant_only(
    acme: Tenant, beta: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    _configure(acme, idp, client_id=ACME_CLIENT, tid=ACME_TID, actor=ALICE)
    _configure(beta, idp, client_id=BETA_CLIENT, tid=BETA_TID, actor=BOB)
    tokens = provider_tokens(idp.issuer, client_id=ACME_CLIENT, redirect_uri=idp.callbacks["acme.localhost"], login=ADA)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    me = Client(HTTP_HOST="acme.localhost").get("/api/v1/auth/me/", headers=bearer)

    assert me.status_code == 200, me.content
    body = me.json()
    assert (body["username"], body["tenant"]["schema"], body["roles"]) == (ADA, "acme", ["admin"])
    assert Client(HTTP_HOST="acme.localhost").get("/api/v1/agents/", headers=bearer).status_code == 200
    # The provider's token does not mint Vigil tokens (they would outlive it).
    minted = Client(HTTP_HOST="acme.localhost").post(
        "/api/v1/auth/tokens/", {"name": "laptop"}, content_type="application/json", headers=bearer
    )
    assert minted.status_code == 403, minted.content

    on_beta = Client(HTTP_HOST="beta.localhost").get("/api/v1/auth/me/", headers=bearer)
    assert on_beta.status_code == 401 and "another client" in on_beta.json()["detail"]
    connection.set_tenant(beta)
    assert not User.objects.filter(username=ADA).exists()

    # The ID token is no API key; a token whose signature does not hold is nothing.
    id_token = Client(HTTP_HOST="acme.localhost").get(
        "/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {tokens['id_token']}"
    )
    assert id_token.status_code == 401 and "at+jwt" in id_token.json()["detail"]
    head, payload, signature = tokens["access_token"].split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    answer = Client(HTTP_HOST="acme.localhost").get("/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert answer.status_code == 401 and answer.json()["code"] == "authentication_failed"


def test_beta_refuses_an_access_token_of_acme_s_client_by_its_tid(
    acme: Tenant, beta: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    _configure(beta, idp, client_id=ACME_CLIENT, tid=BETA_TID, actor=BOB)
    tokens = provider_tokens(idp.issuer, client_id=ACME_CLIENT, redirect_uri=idp.callbacks["acme.localhost"], login=ADA)

    answer = Client(HTTP_HOST="beta.localhost").get(
        "/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
    )

    assert answer.status_code == 401 and "another tenant" in answer.json()["detail"]


def test_the_provider_settings_keep_the_secret_encrypted_write_only_and_audited_in_the_admin(
    acme: Tenant, idp: RunningProvider, loopback_allowed: None
) -> None:
    client = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    start = chain_head()[0]
    form = {
        "name": "Okta",
        "issuer": idp.issuer + "/",
        "client_id": ACME_CLIENT,
        "client_secret": SECRETS[ACME_CLIENT],
        "scopes": "openid email profile groups tid",
        "tid": ACME_TID,
        "role_mapping": json.dumps(MAPPING),
        "enabled": "on",
        "history_change_reason": "company single sign-on",
    }

    added = client.post("/admin/governance/ssoprovider/add/", form)

    assert added.status_code == 302, added.content.decode()[:2000]
    connection.set_tenant(acme)
    provider = SsoProvider.objects.get()
    assert provider.issuer == idp.issuer and SECRETS[ACME_CLIENT] not in provider.client_secret_encrypted
    assert secret_decrypt(provider.client_secret_encrypted) == SECRETS[ACME_CLIENT]
    saved = [e for e in events_after(start) if e.verb == "sso.provider_saved"]
    assert len(saved) == 1 and saved[0].actor_label == ALICE and saved[0].data["secret_changed"] is True
    assert SECRETS[ACME_CLIENT] not in json.dumps([e.data for e in events_after(start)])

    page = client.get(f"/admin/governance/ssoprovider/{provider.pk}/change/").content.decode()
    assert SECRETS[ACME_CLIENT] not in page and provider.client_secret_encrypted not in page
    # Saved without a secret: the stored one stays.
    changed = client.post(
        f"/admin/governance/ssoprovider/{provider.pk}/change/", {**form, "client_secret": "", "name": "Okta EU"}
    )
    assert changed.status_code == 302
    connection.set_tenant(acme)
    provider.refresh_from_db()
    assert provider.name == "Okta EU" and secret_decrypt(provider.client_secret_encrypted) == SECRETS[ACME_CLIENT]
    assert AuditEvent.objects.filter(verb="sso.provider_saved", seq__gt=start).count() == 2

    # A mapping to a role that does not exist is refused by the form.
    connection.set_schema_to_public()
    refused = client.post(
        f"/admin/governance/ssoprovider/{provider.pk}/change/",
        {**form, "role_mapping": json.dumps({"groups": {"x": "superuser"}})},
    )
    assert refused.status_code == 200 and "superuser" in refused.content.decode()


def test_an_issuer_outside_the_operators_egress_rules_is_refused(acme: Tenant, settings: Any) -> None:
    settings.VIGIL_EGRESS_ALLOW = []
    connection.set_tenant(acme)
    alice = User.objects.get(username=ALICE)
    for issuer in ("http://127.0.0.1:9400", "http://169.254.169.254/latest", "http://10.0.0.5"):
        with pytest.raises(EgressRefused, match="VIGIL_EGRESS_ALLOW"):
            sso_provider_save(
                provider=SsoProvider(issuer=issuer, client_id="x", tid="t"), client_secret="s", actor=alice
            )
    assert not SsoProvider.objects.exists()

    client = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    form = {"name": "x", "issuer": "http://127.0.0.1:9400", "client_id": "x", "client_secret": "s"}
    page = client.post("/admin/governance/ssoprovider/add/", {**form, "scopes": "openid", "tid": "t"})
    assert page.status_code == 200 and "VIGIL_EGRESS_ALLOW" in page.content.decode()


def test_a_provider_that_stopped_answering_sends_the_person_back_to_the_login_page(
    acme: Tenant, loopback_allowed: None
) -> None:
    from config.oidc_provider import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    connection.set_tenant(acme)
    SsoProvider.objects.create(
        issuer=dead, client_id="x", client_secret_encrypted="-", tid="t", role_mapping=MAPPING, enabled=True
    )
    connection.set_schema_to_public()
    client = Client(HTTP_HOST="acme.localhost")

    answer = client.get("/oidc/authenticate/")

    assert answer.status_code == 302 and answer["Location"] == "/admin/login/"
    assert "did not answer" in _messages(client)
    with pytest.raises(requests.ConnectionError):
        requests.get(dead, timeout=2)


def test_only_admins_see_the_provider_settings(acme: Tenant) -> None:
    rita = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)
    assert rita.get("/admin/governance/ssoprovider/").status_code == 403
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    assert alice.get("/admin/governance/ssoprovider/").status_code == 200


def test_the_operator_sets_a_tenants_provider_with_the_secret_from_the_environment(
    acme: Tenant, idp: RunningProvider, loopback_allowed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.management import CommandError, call_command

    arguments = ["--tenant", "acme", "--issuer", idp.issuer, "--client-id", ACME_CLIENT, "--tid", ACME_TID]
    with pytest.raises(CommandError, match="VIGIL_SSO_CLIENT_SECRET"):
        call_command("sso_provider", *arguments)
    monkeypatch.setenv("VIGIL_SSO_CLIENT_SECRET", SECRETS[ACME_CLIENT])

    call_command("sso_provider", *arguments, "--name", "Acme SSO", "--role-mapping", json.dumps(MAPPING))

    connection.set_tenant(acme)
    provider = SsoProvider.objects.get()
    assert (provider.name, provider.role_mapping, provider.enabled) == ("Acme SSO", MAPPING, True)
    assert secret_decrypt(provider.client_secret_encrypted) == SECRETS[ACME_CLIENT]
    saved = AuditEvent.objects.filter(verb="sso.provider_saved").order_by("-seq").first()
    assert saved is not None and saved.actor_label.startswith("operator:")
    connection.set_schema_to_public()
    with pytest.raises(CommandError, match="unknown roles: owner"):
        call_command("sso_provider", *arguments, "--role-mapping", '{"groups": {"x": "owner"}}')
    # The provider works for sign-in as set.
    assert _sso_login(Client(HTTP_HOST="acme.localhost"), login=ADA)["Location"] == "/admin/"


def test_the_demos_provider_and_settings_sign_the_demo_admin_in(
    acme: Tenant, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.core.management import call_command

    from config.oidc_provider import demo_config, demo_sso_arguments, free_port, provider_start, provider_stop

    port = free_port()
    proc = provider_start(demo_config(port=port, web_port=8000), workdir=tmp_path_factory.mktemp("demo-idp"))
    try:
        arguments, env = demo_sso_arguments(port=port)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings.VIGIL_EGRESS_ALLOW = env["VIGIL_EGRESS_ALLOW"].split(",")
        call_command(*arguments)
        client = Client(HTTP_HOST="acme.localhost:8000")
        assert "Log in with Acme SSO" in client.get("/admin/login/").content.decode()

        landed = _sso_login(client, login="sso-admin@acme.localhost")

        assert landed["Location"] == "/admin/"
        connection.set_tenant(acme)
        assert access.roles_of(User.objects.get(username="sso-admin@acme.localhost")) == {access.Role.ADMIN}
    finally:
        provider_stop(proc)
