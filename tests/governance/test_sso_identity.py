"""Single sign-on finds its user by the provider's (issuer, sub), never by email: against a real
OpenID Connect provider (config/oidc_provider.py), restarted on the same issuer when a person's
email changes there; an email a Vigil user already has is not taken over unless the tenant's
settings allow linking and the provider says the email is verified."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from config.oidc_provider import ProviderConfig, free_port, provider_start, provider_stop
from governance import access
from governance.actors import Actor
from governance.models import SsoIdentity, SsoProvider
from governance.services import audit_record
from governance.sso import SsoError, sso_provider_save, sso_user
from tenants.models import Tenant
from tests.conftest import ALICE, PASSWORD
from tests.governance.sso_support import ACME_CLIENT, ACME_TID, MAPPING, SECRETS, provider_tokens, sign_in_at_provider

from .conftest import chain_head, events_after

pytestmark = pytest.mark.slow

CALLBACK = "http://acme.localhost/oidc/callback/"
ADA_SUB = "ada-7f3a"  # the provider's stable name for Ada (its sub claim)
ADA_OLD, ADA_NEW = "ada@acme.example", "ada.lovelace@acme.example"
MALLORY_SUB = "mallory-01"  # a person at the provider who was given alice's address


def _person(sub: str, email: str, groups: list[str]) -> dict[str, Any]:
    return {"login": sub, "password": PASSWORD, "email": email, "name": sub, "groups": groups, "tid": ACME_TID}


@contextmanager
def provider_at(port: int, workdir: Path, people: list[dict[str, Any]]) -> Iterator[str]:
    """The provider on ``port`` (so its issuer stays the same across restarts) with ``people``."""
    config = ProviderConfig(
        port=port,
        clients=[{"client_id": ACME_CLIENT, "client_secret": SECRETS[ACME_CLIENT], "redirect_uris": [CALLBACK]}],
        users=people,
    )
    proc = provider_start(config, workdir=workdir)
    try:
        yield config.issuer
    finally:
        provider_stop(proc)


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]


def _configure(tenant: Tenant, issuer: str, *, link: bool = False) -> SsoProvider:
    connection.set_tenant(tenant)
    provider = sso_provider_save(
        provider=SsoProvider(
            name="Company SSO",
            issuer=issuer,
            client_id=ACME_CLIENT,
            tid=ACME_TID,
            role_mapping=MAPPING,
            link_verified_email=link,
        ),
        client_secret=SECRETS[ACME_CLIENT],
        actor=User.objects.get(username=ALICE),
    )
    connection.set_schema_to_public()
    return provider


def _sso_login(client: Client, *, login: str) -> Any:
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302, start.content
    back = sign_in_at_provider(start["Location"], login=login)
    return client.get(back[back.index("/oidc/callback/") :])


def _me(issuer: str, login: str) -> Any:
    tokens = provider_tokens(issuer, client_id=ACME_CLIENT, redirect_uri=CALLBACK, login=login)
    return Client(HTTP_HOST="acme.localhost").get(
        "/api/v1/auth/me/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}"
    )


def test_a_person_keeps_their_user_when_their_email_changes_at_the_provider(
    acme: Tenant, loopback_allowed: None, tmp_path: Path
) -> None:
    port = free_port()
    with provider_at(port, tmp_path / "before", [_person(ADA_SUB, ADA_OLD, ["vigil-admins"])]) as issuer:
        _configure(acme, issuer)
        assert _sso_login(Client(HTTP_HOST="acme.localhost"), login=ADA_SUB)["Location"] == "/admin/"
    connection.set_tenant(acme)
    ada = User.objects.get(username=ADA_OLD)
    identity = SsoIdentity.objects.get()
    assert (identity.user_id, identity.issuer, identity.subject, identity.email) == (ada.pk, issuer, ADA_SUB, ADA_OLD)
    start = chain_head()[0]
    connection.set_schema_to_public()

    # Same issuer, same sub, another address (and new signing keys: the provider restarted).
    with provider_at(port, tmp_path / "after", [_person(ADA_SUB, ADA_NEW, ["vigil-admins"])]):
        client = Client(HTTP_HOST="acme.localhost")
        landed = _sso_login(client, login=ADA_SUB)
        me = _me(issuer, ADA_SUB)

    assert landed["Location"] == "/admin/" and ADA_OLD in client.get("/admin/").content.decode()
    assert me.status_code == 200, me.content
    assert (me.json()["username"], me.json()["roles"]) == (ADA_OLD, ["admin"])
    connection.set_tenant(acme)
    assert not User.objects.filter(username=ADA_NEW).exists()
    assert list(User.objects.filter(sso_identities__subject=ADA_SUB)) == [ada]
    assert SsoIdentity.objects.get().email == ADA_NEW
    verbs = [(e.verb, e.data.get("email")) for e in events_after(start)]
    assert ("sso.signed_in", ADA_NEW) in verbs and not any(v == "sso.user_created" for v, _ in verbs)


def test_an_email_a_vigil_user_has_is_not_taken_over_by_default(
    acme: Tenant, loopback_allowed: None, tmp_path: Path
) -> None:
    """Mallory's provider account was given alice's address (verified, as the provider says):
    signing in must not make her alice, the tenant's admin."""
    with provider_at(free_port(), tmp_path, [_person(MALLORY_SUB, ALICE, ["vigil-reviewers"])]) as issuer:
        _configure(acme, issuer)
        connection.set_tenant(acme)
        start = chain_head()[0]
        connection.set_schema_to_public()
        client = Client(HTTP_HOST="acme.localhost")

        refused = _sso_login(client, login=MALLORY_SUB)
        api = _me(issuer, MALLORY_SUB)

    assert refused["Location"] == "/admin/login/"
    page = client.get("/admin/login/").content.decode()
    assert "already exists and is not linked to this sign-in" in page
    assert client.get("/admin/").status_code == 302
    assert api.status_code == 401 and "already exists" in api.json()["detail"]
    connection.set_tenant(acme)
    assert not SsoIdentity.objects.exists()
    alice = User.objects.get(username=ALICE)
    assert access.roles_of(alice) == {access.Role.ADMIN} and alice.has_usable_password()
    refusals = [e for e in events_after(start) if e.verb == "sso.refused"]
    assert refusals and "already exists" in refusals[0].data["reason"]


def test_with_linking_allowed_a_verified_email_links_the_existing_user_once(
    acme: Tenant, loopback_allowed: None, tmp_path: Path
) -> None:
    with provider_at(free_port(), tmp_path, [_person("alice-at-idp", ALICE, ["vigil-admins"])]) as issuer:
        _configure(acme, issuer, link=True)
        connection.set_tenant(acme)
        start = chain_head()[0]
        connection.set_schema_to_public()
        client = Client(HTTP_HOST="acme.localhost")

        landed = _sso_login(client, login="alice-at-idp")

    assert landed["Location"] == "/admin/", landed
    connection.set_tenant(acme)
    alice = User.objects.get(username=ALICE)
    identity = SsoIdentity.objects.get()
    assert (identity.user_id, identity.subject) == (alice.pk, "alice-at-idp")
    linked = [e for e in events_after(start) if e.verb == "sso.identity_linked"]
    assert len(linked) == 1 and linked[0].data["sub"] == "alice-at-idp" and linked[0].target_id == str(alice.pk)
    assert User.objects.filter(username__iexact=ALICE).count() == 1

    # Another person of the same provider later given alice's address is still refused.
    provider = SsoProvider.objects.get()
    with pytest.raises(SsoError, match="linked to another person at this provider"):
        sso_user(provider, {"sub": "someone-else", "email": ALICE, "email_verified": True}, via="api")
    assert SsoIdentity.objects.count() == 1


@pytest.fixture
def provider(in_acme: Tenant) -> SsoProvider:
    """A provider row for the rules that need no sign-in (sso_user is given verified claims)."""
    return SsoProvider.objects.create(
        issuer="https://idp.example", client_id="c", client_secret_encrypted="-", tid=ACME_TID, role_mapping=MAPPING
    )


def test_linking_needs_the_provider_to_say_the_email_is_verified(provider: SsoProvider) -> None:
    provider.link_verified_email = True
    provider.save()
    for claims in ({"sub": "x1", "email": ALICE}, {"sub": "x2", "email": ALICE, "email_verified": "true"}):
        with pytest.raises(SsoError, match="has not verified the email"):
            sso_user(provider, claims, via="login")
    assert not SsoIdentity.objects.exists()

    # A new user is refused only on an explicit "not verified"; a known identity needs no email.
    with pytest.raises(SsoError, match="has not verified this email"):
        sso_user(provider, {"sub": "n1", "email": "new@acme.example", "email_verified": False}, via="login")
    made = sso_user(provider, {"sub": "n2", "email": "New.Person@acme.example"}, via="login")
    assert made.username == "new.person@acme.example"
    assert sso_user(provider, {"sub": "n2"}, via="api") == made
    with pytest.raises(SsoError, match="no usable email claim"):
        sso_user(provider, {"sub": "n3"}, via="login")
    with pytest.raises(SsoError, match="no usable sub claim"):
        sso_user(provider, {"email": "other@acme.example"}, via="login")


def test_the_same_subject_of_another_issuer_is_another_person(provider: SsoProvider) -> None:
    first = sso_user(provider, {"sub": "p1", "email": "p1@acme.example", "email_verified": True}, via="login")
    other = SsoProvider.objects.create(
        issuer="https://other-idp.example", client_id="c", client_secret_encrypted="-", tid=ACME_TID, enabled=False
    )

    with pytest.raises(SsoError, match="already exists"):
        sso_user(other, {"sub": "p1", "email": "p1@acme.example", "email_verified": True}, via="login")
    second = sso_user(other, {"sub": "p1", "email": "p1-other@acme.example"}, via="login")

    assert second != first
    assert set(SsoIdentity.objects.values_list("issuer", "subject", "user_id")) == {
        (provider.issuer, "p1", first.pk),
        (other.issuer, "p1", second.pk),
    }


def test_a_deactivated_user_stays_out_whatever_their_email(provider: SsoProvider) -> None:
    user = sso_user(provider, {"sub": "d1", "email": "d1@acme.example"}, via="login")
    User.objects.filter(pk=user.pk).update(is_active=False)

    with pytest.raises(SsoError, match="deactivated"):
        sso_user(provider, {"sub": "d1", "email": "fresh-address@acme.example"}, via="login")
    assert not User.objects.filter(username="fresh-address@acme.example").exists()


def test_the_migration_binds_the_users_single_sign_on_created_before(provider: SsoProvider) -> None:
    migration = importlib.import_module("governance.migrations.0009_sso_identity_history")
    made = sso_user(provider, {"sub": "m1", "email": "m1@acme.example"}, via="login")
    local = User.objects.create_user("m2@acme.example", "m2@acme.example", PASSWORD)
    never = User.objects.create_user("m3@acme.example", "m3@acme.example", PASSWORD)
    # A user who existed first and signed in by email match, as the audit recorded it then.
    for sub in ("m2-old", "m2"):
        audit_record(
            actor=Actor.for_user(local),
            verb="sso.signed_in",
            target_type="user",
            target_id=local.pk,
            data={"issuer": provider.issuer, "sub": sub, "roles": []},
        )
    SsoIdentity.objects.all().delete()  # as before identities were kept

    migration.identities_record(django_apps, None)

    # The user it created is bound again; a user matched by email before is bound to the
    # subject of their latest sign-in; a user who never signed in by SSO stays unbound.
    assert sorted(SsoIdentity.objects.values_list("issuer", "subject", "user_id")) == [
        (provider.issuer, "m1", made.pk),
        (provider.issuer, "m2", local.pk),
    ]
    assert not SsoIdentity.objects.filter(user=never).exists()
    assert sso_user(provider, {"sub": "m1", "email": "renamed@acme.example"}, via="api") == made
    assert sso_user(provider, {"sub": "m2", "email": "m2@acme.example"}, via="api") == local


def test_an_admin_unlinks_an_identity_in_the_admin_and_the_next_sign_in_is_a_first_one(
    acme: Tenant, provider: SsoProvider
) -> None:
    person = sso_user(provider, {"sub": "u1", "email": "u1@acme.example"}, via="login")
    identity = SsoIdentity.objects.get(subject="u1")
    before = chain_head()[0]
    alice = Client(HTTP_HOST="acme.localhost")
    alice.force_login(User.objects.get(username=ALICE), backend="django.contrib.auth.backends.ModelBackend")

    listed = alice.get("/admin/governance/ssoidentity/")
    assert listed.status_code == 200 and b"u1@acme.example" in listed.content
    connection.set_tenant(acme)
    unlinked = alice.post(f"/admin/governance/ssoidentity/{identity.pk}/delete/", {"post": "yes"})
    assert unlinked.status_code == 302
    connection.set_tenant(acme)
    assert not SsoIdentity.objects.filter(pk=identity.pk).exists()
    [event] = [e for e in events_after(before) if e.verb == "sso.identity_unlinked"]
    assert (event.target_id, event.data) == (str(person.pk), {"issuer": provider.issuer, "sub": "u1"})
    # The person's email is a user's, and linking is off: the next sign-in is refused.
    with pytest.raises(SsoError):
        sso_user(provider, {"sub": "u1", "email": "u1@acme.example"}, via="login")
