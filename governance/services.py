"""The one way to write the audit trail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from config.connection import connection
from config.db import prepared_cursor
from governance.actors import Actor
from governance.context import get_correlation_id
from governance.hashchain import FORMAT_VERSION, body_pieces, check_json_safe

logger = logging.getLogger(__name__)

# First key of the two-key advisory lock that serializes appends to one schema's chain.
AUDIT_LOCK_CLASS = 0x5647  # "VG"


@dataclass(frozen=True)
class AppendedEvent:
    seq: int
    hash: str
    schema: str


# The append as a SQL expression, for statements that record a change and its audit event
# together (see agents.engine): its parameters are ``audit_append_params(...)``.
AUDIT_APPEND_CALL = (
    "governance_audit_append(%(audit_lock)s, %(audit_before_seq)s, %(audit_before_ts)s, %(audit_after_ts)s)"
)


def audit_append_params(
    *,
    actor: Actor,
    verb: str,
    target_type: str,
    target_id: str | int = "",
    data: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The parameters of ``AUDIT_APPEND_CALL`` for one event, checked: raises ValueError for
    a bad verb or data that is not plain JSON, before anything is sent to the database."""
    if not verb or len(verb) > 100:
        raise ValueError("verb must be 1-100 characters")
    record = {
        "v": FORMAT_VERSION,
        "actor_type": str(actor.type),
        "actor_id": str(actor.id)[:64],
        "actor_label": str(actor.label)[:200],
        "verb": verb,
        "target_type": str(target_type)[:100],
        "target_id": str(target_id)[:100],
        "correlation_id": (correlation_id or get_correlation_id())[:64],
        "data": data or {},
    }
    check_json_safe(record, path="event")
    before_seq, before_ts, after_ts = body_pieces(record)
    return {
        "audit_lock": AUDIT_LOCK_CLASS,
        "audit_before_seq": before_seq,
        "audit_before_ts": before_ts,
        "audit_after_ts": after_ts,
    }


def audit_record(
    *,
    actor: Actor,
    verb: str,
    target_type: str,
    target_id: str | int = "",
    data: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> AppendedEvent:
    """Append one event to the chain of the connection's current schema.

    Joins the caller's transaction (the event commits or rolls back with the change it
    records); outside one, the append commits by itself. The per-schema advisory lock is held
    until that transaction ends, so callers record last, just before commit, to keep the
    serialized section tiny. Raises ValueError for data that is not plain JSON.
    """
    # Everything is checked before any statement: an error inside the append would doom the
    # caller's whole transaction.
    params = audit_append_params(
        actor=actor, verb=verb, target_type=target_type, target_id=target_id, data=data, correlation_id=correlation_id
    )
    # One statement (migration 0003: lock, head read, seq, timestamp, hash and INSERT), so it
    # needs no transaction or savepoint of its own.
    with prepared_cursor() as cursor:
        cursor.execute(f"SELECT seq, hash FROM {AUDIT_APPEND_CALL}", params)
        row = cursor.fetchone()
    if row is None:  # the function returns exactly one row or raises
        raise RuntimeError("the audit append returned no row")
    seq, digest = row
    return AppendedEvent(seq=seq, hash=digest, schema=connection.schema_name)
