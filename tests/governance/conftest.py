"""Helpers for the audit-chain tests.

Appended audit rows are permanent once committed (the table is append-only, and the
concurrency test commits for real), so no test may assume absolute seq numbers: read the
head first and reason relative to it.
"""

from __future__ import annotations

from typing import Any

from config.connection import connection
from governance.actors import Actor
from governance.hashchain import GENESIS_HASH
from governance.models import AuditEvent
from governance.services import AppendedEvent, audit_record

APPEND_ONLY_TRIGGER = "governance_auditevent_append_only"


def chain_head() -> tuple[int, str]:
    """(seq, hash) of the newest event in the current schema's chain; (0, genesis) when empty."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash FROM governance_auditevent ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def events_after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def record(verb: str = "test.recorded", *, n: int = 1, data: dict[str, Any] | None = None) -> list[AppendedEvent]:
    return [
        audit_record(
            actor=Actor.system("tests"),
            verb=verb,
            target_type="test",
            target_id=str(i),
            data=data if data is not None else {"i": i},
        )
        for i in range(n)
    ]


def execute(sql: str, params: list[Any] | None = None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount


def append_only_trigger_disable() -> None:
    """Lets a test tamper with rows as an attacker with table-owner rights could. DDL is
    transactional, so the test transaction's rollback re-enables the trigger."""
    execute(f"ALTER TABLE governance_auditevent DISABLE TRIGGER {APPEND_ONLY_TRIGGER}")


def member_change_form(user: Any, **changes: Any) -> dict[str, Any]:
    """What the tenant admin's change form for ``user`` posts when saved unchanged, with ``changes``
    (the user's schema must be active)."""
    from governance.access import ROLE_CODES, agent_grants_held

    grants = agent_grants_held(user_id=user.pk)
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "roles": list(user.groups.filter(name__in=ROLE_CODES).values_list("name", flat=True)),
        "view_agents": sorted(grants.get("view_agent", ())),
        "manage_agents": sorted(grants.get("manage_agent", ())),
        "review_agents": sorted(grants.get("review_agent", ())),
    }
    if user.is_active:
        data["is_active"] = "on"
    data.update(changes)
    return data
