"""API tokens: Bearer and Token accepted, stored as digests only, named, expiring, revocable,
audited, shown once, and good on their own tenant's host only."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from datetime import timedelta
from typing import Any

from django.apps import apps as global_apps
from django.contrib.auth.models import User
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from config.connection import connection
from governance.models import ApiToken, AuditEvent
from governance.tokens import token_issue
from tenants.models import Tenant
from tests.agents.api_support import member_add, signed_in, token_for
from tests.conftest import ALICE, BOB, RITA, VERA

from .conftest import chain_head, events_after


def _get(client: Client, path: str, token: str, keyword: str = "Bearer") -> Any:
    return client.get(path, HTTP_AUTHORIZATION=f"{keyword} {token}")


def test_a_password_token_works_as_bearer_and_as_token_and_me_says_who_called(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    secret = token_for(client, ALICE)

    for keyword in ("Bearer", "Token", "bearer"):
        me = _get(client, "/api/v1/auth/me/", secret, keyword)
        assert me.status_code == 200, (keyword, me.content)
    body = me.json()
    assert (body["username"], body["tenant"]["schema"], body["roles"]) == (ALICE, "acme", ["admin"])
    assert "manage_users" in body["capabilities"] and body["authenticated_by"] == "token"
    assert body["token"]["name"] == "password sign-in" and secret.startswith(f"vgl_{body['token']['prefix']}_")
    assert _get(client, "/api/v1/agents/", secret).status_code == 200


def test_only_the_digest_is_stored_the_secret_is_shown_once_and_issue_is_audited(acme: Tenant) -> None:
    client = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    start = chain_head()[0]

    created = client.post("/api/v1/auth/tokens/", {"name": "ci deploys", "expires_in_days": 7}, "application/json")

    assert created.status_code == 201, created.content
    secret, token_id = created.json()["token"], created.json()["id"]
    row = ApiToken.objects.get(pk=token_id)
    assert row.digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(list(ApiToken.objects.filter(pk=token_id).values()), default=str)
    assert timedelta(days=6, hours=23) < row.expires_at - row.created_at <= timedelta(days=7)
    listed = client.get("/api/v1/auth/tokens/")
    assert [t["name"] for t in listed.json()] == ["ci deploys"]
    assert secret not in listed.content.decode()
    [event] = [e for e in events_after(start) if e.verb == "auth.token_issued"]
    assert (event.actor_label, event.target_id, event.data["name"]) == (ALICE, str(token_id), "ci deploys")
    assert secret not in event.body
    assert _get(Client(HTTP_HOST="acme.localhost"), "/api/v1/auth/me/", secret).json()["token"]["id"] == token_id


def test_a_revoked_token_is_refused_and_the_revoke_is_audited(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    secret = token_for(client, ALICE)
    token_id = _get(client, "/api/v1/auth/me/", secret).json()["token"]["id"]
    start = chain_head()[0]

    response = client.delete(f"/api/v1/auth/tokens/{token_id}/", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 204
    connection.set_tenant(acme)
    assert [(e.verb, e.target_id) for e in events_after(start)] == [("auth.token_revoked", str(token_id))]
    refused = _get(client, "/api/v1/agents/", secret)
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    listed = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE).get("/api/v1/auth/tokens/").json()
    assert [(t["id"], t["active"], t["revoked_at"] is not None) for t in listed] == [(token_id, False, True)]


def test_users_revoke_only_their_own_tokens_and_admins_any(acme: Tenant) -> None:
    member_add(acme, VERA, "viewer")
    vera = signed_in(Client(HTTP_HOST="acme.localhost"), acme, VERA)
    alice_token = token_issue(user=User.objects.get(username=ALICE), name="alice's").token
    vera_token = token_issue(user=User.objects.get(username=VERA), name="vera's").token

    refused = vera.delete(f"/api/v1/auth/tokens/{alice_token.pk}/")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert vera.delete("/api/v1/auth/tokens/999999/").status_code == 404
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    assert alice.delete(f"/api/v1/auth/tokens/{vera_token.pk}/").status_code == 204

    assert ApiToken.objects.get(pk=alice_token.pk).revoked_at is None
    assert ApiToken.objects.get(pk=vera_token.pk).revoked_at is not None


def test_an_expired_token_or_one_of_a_deactivated_user_is_refused(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    connection.set_tenant(acme)
    expired = token_issue(user=User.objects.get(username=ALICE), name="old")
    ApiToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    vera = member_add(acme, VERA, "viewer")
    deactivated = token_issue(user=vera, name="vera's")
    User.objects.filter(pk=vera.pk).update(is_active=False)

    assert _get(client, "/api/v1/agents/", expired.secret).status_code == 401
    assert _get(client, "/api/v1/agents/", deactivated.secret).status_code == 401
    assert _get(client, "/api/v1/agents/", expired.secret[:-2] + "xx").status_code == 401


def test_a_token_of_one_tenant_is_refused_on_another_tenants_host(acme: Tenant, beta: Tenant) -> None:
    secret = token_for(Client(HTTP_HOST="beta.localhost"), BOB)
    acme_client = Client(HTTP_HOST="acme.localhost")

    assert _get(Client(HTTP_HOST="beta.localhost"), "/api/v1/auth/me/", secret).json()["username"] == BOB
    assert _get(acme_client, "/api/v1/auth/me/", secret).status_code == 401
    assert _get(acme_client, "/api/v1/agents/", secret, "Token").status_code == 401


def test_last_use_is_recorded_at_most_once_a_minute(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    connection.set_tenant(acme)
    issued = token_issue(user=User.objects.get(username=ALICE), name="poller")
    assert issued.token.last_used_at is None

    _get(client, "/api/v1/agents/", issued.secret)
    first = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    assert first is not None
    recent = timezone.now() - timedelta(seconds=30)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=recent)
    _get(client, "/api/v1/agents/", issued.secret)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == recent
    stale = timezone.now() - timedelta(seconds=61)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=stale)
    _get(client, "/api/v1/agents/", issued.secret)
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at > stale  # type: ignore[operator]


def test_a_token_cannot_issue_tokens_and_bad_input_is_named(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")
    secret = token_for(client, ALICE)

    refused = client.post(
        "/api/v1/auth/tokens/", {"name": "more"}, "application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    session = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    too_long = session.post("/api/v1/auth/tokens/", {"name": "x", "expires_in_days": 5000}, "application/json")
    assert (too_long.status_code, list(too_long.json()["extra"]["fields"])) == (400, ["expires_in_days"])
    nameless = session.post("/api/v1/auth/tokens/", {"name": ""}, "application/json")
    assert (nameless.status_code, list(nameless.json()["extra"]["fields"])) == (400, ["name"])
    assert list(ApiToken.objects.filter(user__username=ALICE).values_list("name", flat=True)) == ["password sign-in"]


def test_unknown_bearer_credentials_are_refused(acme: Tenant) -> None:
    client = Client(HTTP_HOST="acme.localhost")

    # Not shaped like a Vigil token: left to the authenticators after ours (an identity
    # provider's access token), which do not know it either.
    assert _get(client, "/api/v1/agents/", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln").status_code == 401
    # Shaped like one but unknown: refused as a bad credential.
    bad = _get(client, "/api/v1/agents/", "vgl_00000000_" + "A" * 43)
    assert (bad.status_code, bad.json()["code"]) == (401, "authentication_failed")
    assert _get(client, "/api/v1/agents/", "vgl_0000_short").status_code == 401


def test_drf_tokens_stored_in_plain_text_become_hashed_and_keep_working(acme: Tenant) -> None:
    connection.set_tenant(acme)
    legacy = Token.objects.create(user=User.objects.get(username=ALICE))
    key = legacy.key

    with db_connection.schema_editor() as editor:
        importlib.import_module("governance.migrations.0005_api_tokens").legacy_tokens_hash(global_apps, editor)

    assert not Token.objects.exists()
    migrated = ApiToken.objects.get(prefix=key[:8])
    assert migrated.digest == hashlib.sha256(key.encode()).hexdigest() and migrated.user.username == ALICE
    assert _get(Client(HTTP_HOST="acme.localhost"), "/api/v1/auth/me/", key, "Token").json()["username"] == ALICE
    assert not AuditEvent.objects.filter(body__contains=key).exists()


def test_the_admin_issues_a_token_shown_once_and_lists_only_ones_own_to_non_admins(acme: Tenant) -> None:
    rita = signed_in(Client(HTTP_HOST="acme.localhost"), acme, RITA)
    alices = token_issue(user=User.objects.get(username=ALICE), name="alice's ci")
    connection.set_schema_to_public()

    page = rita.post("/admin/governance/apitoken/add/", {"name": "rita's laptop", "expires_in_days": 30})

    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    secret = re.search(r'id="api-token-secret"[^>]*>(vgl_[^<]+)<', page.content.decode())
    assert secret is not None
    me = _get(Client(HTTP_HOST="acme.localhost"), "/api/v1/auth/me/", secret.group(1)).json()
    assert (me["username"], me["token"]["name"]) == (RITA, "rita's laptop")
    listing = rita.get("/admin/governance/apitoken/").content.decode()
    assert "rita&#x27;s laptop" in listing and "alice&#x27;s ci" not in listing
    assert secret.group(1) not in listing
    alice = signed_in(Client(HTTP_HOST="acme.localhost"), acme, ALICE)
    connection.set_schema_to_public()
    assert "rita&#x27;s laptop" in alice.get("/admin/governance/apitoken/").content.decode()

    rita.post(
        "/admin/governance/apitoken/",
        {"action": "revoke_selected", "_selected_action": [me["token"]["id"], alices.token.pk]},
    )

    connection.set_tenant(acme)
    assert ApiToken.objects.get(pk=me["token"]["id"]).revoked_at is not None
    assert ApiToken.objects.get(pk=alices.token.pk).revoked_at is None  # not hers: not in her list
