"""Access-matrix entries of the approval policies (API /api/v1/hitl/policies/ and the admin):
every role reads them, only admins create, change and version them, nobody deletes them (see
tests/governance/test_access_matrix.py for the tables' formats)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from config.connection import connection
from governance.actors import Actor
from hitl.models import Policy
from hitl.policies import policy_create_within
from tenants.models import Tenant

ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()
MATRIX_POLICY = "matrix-policy"

API: dict[tuple[str, str], Any] = {
    ("hitl-policy-list", "get"): ALL,
    ("hitl-policy-list", "post"): ADMINS,
    ("hitl-policy-detail", "get"): ALL,
    ("hitl-policy-detail", "patch"): ADMINS,
    ("hitl-policy-versions", "get"): ALL,
    ("hitl-policy-versions", "post"): ADMINS,
}
ADMIN: dict[tuple[str, str], Any] = {
    **{(f"hitl_policy_{view}", "get"): ALL for view in ("changelist", "change", "history")},
    ("hitl_policy_add", "get"): ADMINS,
    ("hitl_policy_delete", "get"): NOBODY,
}
ACTIONS: dict[str, dict[str, Any]] = {"hitl.policy": {"delete_selected": NOBODY}}


def _policy_id(world: Any) -> int:
    """A policy made by the platform (no actor of the matrix owns it), once per world. It only
    matches a tool no agent calls, so that it changes nothing else the matrix does."""
    policy_id = world.__dict__.get("_policy_id")
    if policy_id is None:
        connection.set_tenant(Tenant.objects.get(schema_name="acme"))
        policy = Policy.objects.filter(name=MATRIX_POLICY).first() or policy_create_within(
            name=MATRIX_POLICY,
            content={"conditions": {"tools": ["matrix-no-such-tool"]}},
            author=None,
            actor=Actor.system("matrix"),
        )
        policy_id = world.__dict__["_policy_id"] = policy.pk
    return int(policy_id)


API_URLS: dict[str, Any] = {
    "hitl-policy-detail": lambda world: reverse("hitl-policy-detail", kwargs={"pk": _policy_id(world)}),
    "hitl-policy-versions": lambda world: reverse("hitl-policy-versions", kwargs={"pk": _policy_id(world)}),
}
API_BODIES: dict[tuple[str, str], Any] = {
    ("hitl-policy-list", "post"): lambda world, actor: {
        "name": f"matrix-{''.join(c for c in actor if c.isalnum())}",
        "conditions": {"tools": ["matrix-no-such-tool"]},
    },
    ("hitl-policy-detail", "patch"): lambda world, actor: {"description": "changed"},
    ("hitl-policy-versions", "post"): lambda world, actor: {
        "conditions": {"tools": ["matrix-no-such-tool"]},
        "quorum": 2,
    },
}


def _admin_url(view: str) -> Any:
    return lambda world: reverse(f"admin:hitl_policy_{view}", args=[_policy_id(world)])


ADMIN_URLS: dict[str, Any] = {f"hitl_policy_{view}": _admin_url(view) for view in ("change", "history", "delete")}
