"""The one way to write the audit trail."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

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
    records). The per-schema advisory lock is held until that transaction ends, so callers
    record last, just before commit, to keep the serialized section tiny. Raises ValueError
    for data that is not plain JSON.
    """
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
    # Everything is checked before any statement: an error inside the append would doom the
    # caller's whole transaction, which it joins without a savepoint.
    check_json_safe(record, path="event")
    # savepoint=False: joining the caller's transaction needs no savepoint (an audit failure
    # fails the whole change anyway), which saves two round trips per event.
    with transaction.atomic(savepoint=False):
        with prepared_cursor() as cursor:
            # Lock, head read, seq, timestamp, hash and insert in one call (migration 0003).
            cursor.execute("SELECT seq, hash FROM governance_audit_append(%s, %s, %s, %s)",
                           [AUDIT_LOCK_CLASS, *body_pieces(record)])
            seq, digest = cursor.fetchone()
    return AppendedEvent(seq=seq, hash=digest, schema=connection.schema_name)
