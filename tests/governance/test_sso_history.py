"""The single sign-on provider's history (django-simple-history): every change in the tenant
admin kept with who and the reason the form required, shown on its history pages; never the
client secret, not even encrypted; no revert past the service that checks and audits."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.test import Client

from config.connection import connection
from config.secrets import secret_decrypt
from governance.actors import Actor
from governance.models import SsoProvider
from governance.sso import sso_provider_save
from tenants.models import Tenant
from tests.agents.api_support import signed_in
from tests.conftest import ALICE

SECRET = "sso-history-must-never-keep-this"
ISSUER = "http://127.0.0.1:9400"  # never called: saving checks the egress rules only


@pytest.fixture(autouse=True)
def loopback_allowed(settings: Any) -> None:
    settings.VIGIL_EGRESS_ALLOW = ["127.0.0.1"]


@pytest.fixture
def alice(acme: Tenant) -> Client:
    return signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)


def _form(**values: str) -> dict[str, str]:
    form = {
        "name": "Okta",
        "issuer": ISSUER,
        "client_id": "vigil-acme",
        "client_secret": SECRET,
        "scopes": "openid email profile groups tid",
        "tid": "acme-org",
        "role_mapping": json.dumps({"groups": {"vigil-admins": "admin"}}),
        "enabled": "on",
        "_save": "Save",
    }
    return {**form, **values}


def _dumped(provider: SsoProvider) -> str:
    return json.dumps(list(provider.history.values()), default=str)


def test_admin_changes_are_kept_with_who_and_why_and_never_the_secret(acme: Tenant, alice: Client) -> None:
    added = alice.post("/admin/governance/ssoprovider/add/", _form(history_change_reason="company SSO, ticket IT-7"))
    assert added.status_code == 302, added.context["adminform"].form.errors
    connection.set_tenant(acme)
    provider = SsoProvider.objects.get()
    assert secret_decrypt(provider.client_secret_encrypted) == SECRET
    connection.set_schema_to_public()

    changed = alice.post(
        f"/admin/governance/ssoprovider/{provider.pk}/change/",
        _form(
            client_secret="rotated-" + SECRET,
            role_mapping=json.dumps({"groups": {"vigil-admins": "viewer"}}),
            history_change_reason="admins only read for the audit",
        ),
    )

    assert changed.status_code == 302, changed.context["adminform"].form.errors
    connection.set_tenant(acme)
    records = list(provider.history.order_by("history_id"))
    assert [(r.history_type, r.history_user.username, r.history_change_reason) for r in records] == [
        ("+", ALICE, "company SSO, ticket IT-7"),
        ("~", ALICE, "admins only read for the audit"),
    ]
    assert records[1].role_mapping == {"groups": {"vigil-admins": "viewer"}}
    delta = records[1].diff_against(records[0])
    assert delta.changed_fields == ["role_mapping"]
    assert "client_secret_encrypted" not in {f.name for f in provider.history.model._meta.fields}
    provider.refresh_from_db()
    dumped = _dumped(provider)
    assert SECRET not in dumped and provider.client_secret_encrypted not in dumped
    connection.set_schema_to_public()
    page = alice.get(f"/admin/governance/ssoprovider/{provider.pk}/history/").content.decode()
    assert "admins only read for the audit" in page and ALICE in page and SECRET not in page


def test_the_change_form_requires_a_reason_and_saves_nothing_without_one(acme: Tenant, alice: Client) -> None:
    form = alice.get("/admin/governance/ssoprovider/add/").content.decode()
    assert "Reason for this change" in form

    refused = alice.post("/admin/governance/ssoprovider/add/", _form())

    assert refused.status_code == 200
    assert "history_change_reason" in refused.context["adminform"].form.errors
    connection.set_tenant(acme)
    assert not SsoProvider.objects.exists()


def test_reverting_from_a_history_page_is_refused(acme: Tenant, alice: Client) -> None:
    connection.set_tenant(acme)
    provider = sso_provider_save(
        provider=SsoProvider(name="First", issuer=ISSUER, client_id="c", tid="acme-org"),
        client_secret=SECRET,
        actor=User.objects.get(username=ALICE),
    )
    provider.name = "Second"
    sso_provider_save(provider=provider, client_secret=None, actor=Actor.operator("tester"))
    first = provider.history.earliest()
    connection.set_schema_to_public()
    url = f"/admin/governance/ssoprovider/{provider.pk}/history/{first.history_id}/"

    assert alice.get(url).status_code == 200
    assert alice.post(url, _form(name="First", history_change_reason="revert")).status_code == 403
    connection.set_tenant(acme)
    assert SsoProvider.objects.get().name == "Second"
    latest = provider.history.latest()
    # The operator's change (no request) names no user; the first record names alice's service call.
    assert (latest.name, latest.history_type, latest.history_user_id) == ("Second", "~", None)


def test_the_migration_records_the_providers_set_before_history_was_kept(in_acme: Tenant) -> None:
    migration = importlib.import_module("governance.migrations.0009_sso_identity_history")
    provider = SsoProvider.objects.create(
        issuer=ISSUER, client_id="c", client_secret_encrypted="ciphertext-not-kept", tid="acme-org"
    )
    provider.history.all().delete()

    migration.providers_record(django_apps, None)

    record = provider.history.get()
    assert (record.issuer, record.client_id, record.history_type) == (ISSUER, "c", "+")
    assert record.history_change_reason == "set before history was kept"
    assert "ciphertext-not-kept" not in _dumped(provider)
