"""Re-checking a schema's audit chain from its rows alone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import transaction

from config.connection import connection
from governance.hashchain import GENESIS_HASH


@dataclass(frozen=True)
class ChainReport:
    schema: str
    events: int
    head_hash: str
    broken_seq: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def audit_chain_verify(*, batch_size: int = 20_000) -> ChainReport:
    """Walk the current schema's chain in seq order and report the first broken link.

    A link is broken when its seq is not the next integer (a deleted or inserted row), its
    prev_hash is not the previous hash (reordered or re-chained rows), or sha256(prev_hash ‖
    body) is not its stored hash (an altered row). Read-only.
    """
    schema = connection.schema_name
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    sha256 = hashlib.sha256
    with transaction.atomic():
        with connection.cursor() as setup:
            setup.execute("SELECT 1")  # makes django-tenants set the search path on this connection
        # A server-side cursor streams the table without holding it all in memory.
        with connection.connection.cursor(name="vigil_audit_verify") as cursor:
            cursor.itersize = batch_size
            cursor.execute("SELECT seq, prev_hash, hash, body FROM governance_auditevent ORDER BY seq")
            for seq, prev_hash, stored, body in cursor:
                if seq != expected_seq:
                    missing = expected_seq if seq > expected_seq else seq
                    return ChainReport(schema, count, prev, missing, f"seq {expected_seq} expected, found {seq}")
                if prev_hash != prev:
                    return ChainReport(schema, count, prev, seq, "prev_hash does not match the previous event's hash")
                if sha256((prev_hash + body).encode("utf-8")).hexdigest() != stored:
                    return ChainReport(schema, count, prev, seq, "hash does not match the event's content")
                prev, expected_seq, count = stored, expected_seq + 1, count + 1
    return ChainReport(schema, count, prev)
