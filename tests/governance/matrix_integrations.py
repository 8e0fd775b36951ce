"""Access-matrix entries of the integrations (agents.api_integrations, agents.admin_integrations
and the outbox's replay); see tests/governance/test_access_matrix.py for the tables' formats.

Credentials and endpoints decide where a tenant's effects go and with which secrets: admins
only, reading included. The outbox is read like the tasks it belongs to; replaying a dead
letter is an admin's. The endpoint's URL is a public address literal, which the egress rules
allow without resolving a name."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from agents.integrations.services import credential_create, endpoint_create
from agents.models import Credential, Endpoint
from config.connection import connection
from governance.actors import Actor
from tenants.models import Tenant

ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
ADMINS = frozenset({"admin"})
CREDENTIAL, ENDPOINT, SECRET = "matrix-token", "matrix-orders", "matrix-signing-secret-0123"
URL = "https://93.184.215.14/hooks"

API: dict[tuple[str, str], Any] = {
    ("integration-credential-list", "get"): ADMINS,
    ("integration-credential-list", "post"): ADMINS,
    ("integration-credential-detail", "get"): ADMINS,
    ("integration-credential-detail", "patch"): ADMINS,
    ("integration-credential-detail", "delete"): ADMINS,
    ("integration-endpoint-list", "get"): ADMINS,
    ("integration-endpoint-list", "post"): ADMINS,
    ("integration-endpoint-detail", "get"): ADMINS,
    ("integration-endpoint-detail", "patch"): ADMINS,
    ("integration-endpoint-detail", "delete"): ADMINS,
    ("integration-outbox-list", "get"): ALL,
    ("integration-outbox-detail", "get"): ALL,
    ("integration-outbox-replay", "post"): ADMINS,
}
ADMIN: dict[tuple[str, str], Any] = {
    **{
        (f"agents_{model}_{view}", "get"): ADMINS
        for model in ("credential", "endpoint")
        for view in ("changelist", "add", "change", "history", "delete")
    },
}
ACTIONS: dict[str, dict[str, Any]] = {
    "agents.credential": {"delete_selected": ADMINS},
    "agents.endpoint": {"delete_selected": ADMINS},
}


def _credential(world: Any) -> Credential:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    found = Credential.objects.filter(name=CREDENTIAL).first()
    return found or credential_create(
        name=CREDENTIAL, kind="bearer", secret="matrix-bearer-token", actor=Actor.for_user(world.olga)
    )


def _endpoint(world: Any) -> Endpoint:
    connection.set_tenant(Tenant.objects.get(schema_name="acme"))
    found = Endpoint.objects.filter(name=ENDPOINT).first()
    return found or endpoint_create(
        name=ENDPOINT, url=URL, kinds=["restart"], signing_secret=SECRET, actor=Actor.for_user(world.olga)
    )


def _api_url(url_name: str, make: Any) -> Any:
    def url(world: Any) -> str:
        name = make(world).name
        connection.set_schema_to_public()
        return reverse(url_name, kwargs={"name": name})

    return url


def _outbox_url(url_name: str) -> Any:
    def url(world: Any) -> str:
        return reverse(url_name, kwargs={"pk": world.outbox.pk})

    return url


def _admin_url(model: str, make: Any, view: str) -> Any:
    def url(world: Any) -> str:
        return reverse(f"admin:agents_{model}_{view}", args=[make(world).pk])

    return url


def _slug(actor: str) -> str:
    return actor.replace(" ", "-").replace("'", "")


API_URLS: dict[str, Any] = {
    "integration-credential-detail": _api_url("integration-credential-detail", _credential),
    "integration-endpoint-detail": _api_url("integration-endpoint-detail", _endpoint),
    "integration-outbox-detail": _outbox_url("integration-outbox-detail"),
    "integration-outbox-replay": _outbox_url("integration-outbox-replay"),
}
API_BODIES: dict[tuple[str, str], Any] = {
    ("integration-credential-list", "post"): lambda world, actor: {
        "name": f"made-by-{_slug(actor)}",
        "kind": "bearer",
        "secret": "a-bearer-token",
    },
    ("integration-credential-detail", "patch"): lambda world, actor: {"secret": "a-new-bearer-token"},
    ("integration-endpoint-list", "post"): lambda world, actor: {
        "name": f"made-by-{_slug(actor)}",
        "url": URL,
        "kinds": ["reply"],
        "signing_secret": SECRET,
    },
    ("integration-endpoint-detail", "patch"): lambda world, actor: {"enabled": True},
    ("integration-outbox-replay", "post"): lambda world, actor: {},
}
ADMIN_URLS: dict[str, Any] = {
    **{
        f"agents_credential_{view}": _admin_url("credential", _credential, view)
        for view in ("change", "history", "delete")
    },
    **{f"agents_endpoint_{view}": _admin_url("endpoint", _endpoint, view) for view in ("change", "history", "delete")},
}
