"""Access-matrix entries of manual escalation and clarification (hitl.api_escalation,
hitl.admin_escalation): escalating and asking need a reviewer of the agent; answering is
the requester's (olga here, who holds none of the matrix roles' users) or an admin's, so only
the admin passes; anyone in sight lists the questions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.urls import reverse

if TYPE_CHECKING:
    from tests.governance.test_access_matrix import World

# The matrix's role sets (tests/governance/test_access_matrix.py), which loads this module.
ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
REVIEWERS = frozenset({"admin", "reviewer"})
ADMINS = frozenset({"admin"})
Allowed = frozenset[str] | str

API: dict[tuple[str, str], Allowed] = {
    ("approval-escalate", "post"): REVIEWERS,
    ("approval-clarify", "post"): REVIEWERS,
    ("approval-answer", "post"): ADMINS,
    ("approval-clarifications", "get"): ALL,
}
API_URLS = {
    "approval-escalate": lambda world: reverse("approval-escalate"),
    "approval-clarifications": lambda world: reverse("approval-clarifications") + "?mine=1",
}


def _escalate(world: World, actor: str) -> dict[str, Any]:
    return {"approval": world.approval.pk, "reason": f"matrix: {actor}"}


API_BODIES = {
    ("approval-escalate", "post"): _escalate,
    ("approval-clarify", "post"): lambda world, actor: {"question": "Which order is it?"},
    ("approval-answer", "post"): lambda world, actor: {"answer": "Order AB1234."},
}
ADMIN: dict[tuple[str, str], Allowed] = {
    ("hitl_approvalrequest_escalate", "post"): REVIEWERS,
    ("hitl_approvalrequest_clarify", "post"): REVIEWERS,
}
ADMIN_URLS = {
    "hitl_approvalrequest_escalate": lambda world: reverse(
        "admin:hitl_approvalrequest_escalate", args=[world.approval.pk]
    ),
    "hitl_approvalrequest_clarify": lambda world: reverse(
        "admin:hitl_approvalrequest_clarify", args=[world.approval.pk]
    ),
}
ADMIN_BODIES = {
    "hitl_approvalrequest_escalate": lambda world: {"reason": "matrix"},
    "hitl_approvalrequest_clarify": lambda world: {"question": "Which order is it?"},
}
