"""Access-matrix entries of role assignments' history (governance.history_admin): admins read
who holds which role and each grant's and revocation's record; nobody edits or reverts them
here (roles are given on the user's page or over the roles API)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.urls import reverse

if TYPE_CHECKING:
    from tests.governance.test_access_matrix import World

# The matrix's role sets (tests/governance/test_access_matrix.py), which loads this module.
ADMINS = frozenset({"admin"})
NOBODY: frozenset[str] = frozenset()
Allowed = frozenset[str] | str


def _assignment(world: World) -> int:
    from governance.models import RoleAssignment

    return RoleAssignment.objects.get(user=world.olga, role="agent_manager").pk


def _record(world: World) -> int:
    from governance.models import RoleAssignment

    return int(RoleAssignment.history.filter(id=_assignment(world)).values_list("history_id", flat=True)[0])


ADMIN: dict[tuple[str, str], Allowed] = {
    ("governance_roleassignment_changelist", "get"): ADMINS,
    ("governance_roleassignment_change", "get"): ADMINS,  # read only
    ("governance_roleassignment_history", "get"): ADMINS,
    ("governance_roleassignment_simple_history", "get"): ADMINS,
    ("governance_roleassignment_simple_history", "post"): NOBODY,  # no revert past the roles service
    ("governance_roleassignment_add", "get"): NOBODY,
    ("governance_roleassignment_delete", "get"): NOBODY,
}


def _url(view: str) -> Callable[[World], str]:
    return lambda world: reverse(f"admin:governance_roleassignment_{view}", args=[_assignment(world)])


ADMIN_URLS: dict[str, Callable[[World], str]] = {
    **{f"governance_roleassignment_{view}": _url(view) for view in ("change", "history", "delete")},
    "governance_roleassignment_simple_history": lambda world: reverse(
        "admin:governance_roleassignment_simple_history", args=[_assignment(world), _record(world)]
    ),
}
ADMIN_BODIES = {"governance_roleassignment_simple_history": lambda world: {"role": "admin"}}
ACTIONS: dict[str, dict[str, Allowed]] = {"governance.roleassignment": {"delete_selected": NOBODY}}
