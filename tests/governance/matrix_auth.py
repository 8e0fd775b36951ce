"""Access matrix entries of the API's sign-in, tokens, lockout and roles endpoints (see
tests/governance/test_access_matrix.py for the tables' formats)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from config.connection import connection
from governance.tokens import token_issue
from tenants.models import Tenant

ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
ADMINS = frozenset({"admin"})
SIGNED_IN = "signed in"
OLGA = "olga@acme.example"

API: dict[tuple[str, str], Any] = {
    ("api-token-list", "get"): SIGNED_IN,
    ("api-token-list", "post"): SIGNED_IN,
    ("api-token-detail", "delete"): ADMINS,  # olga's token: others may revoke only their own
    ("auth-me", "get"): SIGNED_IN,
    ("auth-unlock", "post"): ADMINS,
    ("governance-roles", "get"): ALL,
    ("governance-roles-assign", "post"): ADMINS,
    ("governance-roles-revoke", "post"): ADMINS,
    ("governance-permission-check", "get"): ALL,
}


def _olga_token_url(world: Any) -> str:
    token_id = world.__dict__.get("_olga_token_id")
    if token_id is None:
        connection.set_tenant(Tenant.objects.get(schema_name="acme"))
        token_id = token_issue(user=world.olga, name="matrix").token.pk
        world.__dict__["_olga_token_id"] = token_id
    return reverse("api-token-detail", kwargs={"pk": token_id})


API_URLS: dict[str, Any] = {
    "api-token-detail": _olga_token_url,
    "auth-me": lambda world: reverse("auth-me"),
    "auth-unlock": lambda world: reverse("auth-unlock"),
    "governance-roles": lambda world: reverse("governance-roles"),
    "governance-roles-assign": lambda world: reverse("governance-roles-assign"),
    "governance-roles-revoke": lambda world: reverse("governance-roles-revoke"),
    "governance-permission-check": lambda world: (
        f"{reverse('governance-permission-check')}?capability=run&agent={world.agent.pk}"
    ),
}

API_BODIES: dict[tuple[str, str], Any] = {
    ("api-token-list", "post"): lambda world, actor: {"name": f"matrix {actor}"},
    ("auth-unlock", "post"): lambda world, actor: {"username": OLGA},
    ("governance-roles-assign", "post"): lambda world, actor: {"user": OLGA, "role": "reviewer"},
    ("governance-roles-revoke", "post"): lambda world, actor: {"user": OLGA, "role": "reviewer"},
}

# The token admin: everyone with a role lists, issues and revokes their own tokens (admins
# everyone's); olga's token is out of other roles' lists, so its pages send them to the index.
NOBODY: frozenset[str] = frozenset()
ADMIN: dict[tuple[str, str], Any] = {
    **{(f"governance_apitoken_{view}", "get"): ALL for view in ("changelist", "add", "change", "history")},
    ("governance_apitoken_add", "post"): ALL,
    ("governance_apitoken_delete", "get"): NOBODY,
}
ACTIONS: dict[str, dict[str, Any]] = {
    "governance.apitoken": {"delete_selected": NOBODY, "revoke_selected": ALL},
}


def _olga_token_admin_url(view: str) -> Any:
    def url(world: Any) -> str:
        token_id = _olga_token_url(world).rstrip("/").rsplit("/", 1)[-1]
        return reverse(f"admin:governance_apitoken_{view}", args=[token_id])

    return url


ADMIN_URLS: dict[str, Any] = {
    f"governance_apitoken_{view}": _olga_token_admin_url(view) for view in ("change", "history", "delete")
}
ADMIN_BODIES: dict[str, Any] = {
    "governance_apitoken_add": lambda world: {"name": "matrix", "expires_in_days": 30},
}
