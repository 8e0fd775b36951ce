"""Access-matrix entries of the audit trail's API: every role reads it and exports it (the
``view`` capability reads the audit trail, as in the admin)."""

from __future__ import annotations

from django.urls import reverse

# The matrix's role sets (tests/governance/test_access_matrix.py), which loads this module.
ALL = frozenset({"admin", "agent_manager", "reviewer", "viewer"})
Allowed = frozenset[str] | str

API: dict[tuple[str, str], Allowed] = {
    ("governance-audit", "get"): ALL,
    ("governance-audit-export", "get"): ALL,
}
API_URLS = {
    "governance-audit": lambda world: reverse("governance-audit") + "?verb=task.*&limit=5",
    "governance-audit-export": lambda world: reverse("governance-audit-export") + "?format=jsonl&verb=agent.*",
}
