"""The one way to write the audit trail."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from governance.actors import Actor
from governance.context import get_correlation_id
from governance.hashchain import FORMAT_VERSION, GENESIS_HASH, canonical_json, chain_hash, check_json_safe

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
        with connection.cursor() as cursor:
            # Lock and head read in one call (migration 0002 explains why that is safe).
            cursor.execute("SELECT head_seq, head_hash FROM governance_audit_lock_head(%s)", [AUDIT_LOCK_CLASS])
            head = cursor.fetchone()
            seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
            record["seq"] = seq
            record["ts_us"] = time.time_ns() // 1000
            body = canonical_json(record)
            digest = chain_hash(prev_hash, body)
            cursor.execute(
                "INSERT INTO governance_auditevent (body, prev_hash, hash) VALUES (%s, %s, %s)",
                [body, prev_hash, digest],
            )
    return AppendedEvent(seq=seq, hash=digest, schema=connection.schema_name)
