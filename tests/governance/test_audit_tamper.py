"""audit_chain_verify against rows tampered with by someone who can bypass the trigger.

Each test disables the append-only trigger inside its own transaction; the rollback at the
end of the test restores the trigger and the rows.
"""

from __future__ import annotations

import hashlib

import pytest

from config.connection import connection
from governance.hashchain import GENESIS_HASH
from governance.models import AuditEvent
from governance.verification import audit_chain_verify
from tenants.models import Tenant

from .conftest import append_only_trigger_disable, chain_head, events_after, execute, record


def _sha(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@pytest.fixture
def chain(in_acme: Tenant) -> list[AuditEvent]:
    """Three fresh events on acme's chain, then the trigger off; k is the middle one."""
    start, _ = chain_head()
    record("test.tamper", n=3)
    append_only_trigger_disable()
    return events_after(start)


def test_a_valid_chain_verifies(in_acme: Tenant) -> None:
    record("test.valid", n=3)
    head_seq, head_hash = chain_head()
    report = audit_chain_verify()
    assert report.ok
    assert (report.schema, report.events, report.head_hash) == ("acme", head_seq, head_hash)
    assert (report.broken_seq, report.reason) == (None, "")


def test_a_small_batch_size_streams_the_same_result(in_acme: Tenant) -> None:
    record("test.valid", n=5)
    assert audit_chain_verify(batch_size=2) == audit_chain_verify()


def test_an_empty_chain_verifies_with_the_genesis_head(db: None) -> None:
    spare = Tenant.objects.filter(status="spare").order_by("pk").first()
    assert spare is not None
    connection.set_tenant(spare)
    report = audit_chain_verify()
    assert report.ok and (report.events, report.head_hash) == (0, GENESIS_HASH)


def test_an_altered_body_is_reported_at_its_seq(chain: list[AuditEvent]) -> None:
    k = chain[1].seq
    changed = execute(
        'UPDATE governance_auditevent SET body = replace(body, \'"verb":"test.tamper"\', '
        '\'"verb":"test.forged"\') WHERE seq = %s',
        [k],
    )
    assert changed == 1
    assert AuditEvent.objects.get(seq=k).verb == "test.forged"
    report = audit_chain_verify()
    assert not report.ok
    assert (report.broken_seq, report.events) == (k, k - 1)
    assert report.reason == "hash does not match the event's content"
    assert report.head_hash == chain[0].hash


def test_an_altered_data_value_is_reported_at_its_seq(chain: list[AuditEvent]) -> None:
    k = chain[2].seq
    execute(
        'UPDATE governance_auditevent SET body = replace(body, \'"data":{"i":2}\', \'"data":{"i":3}\') WHERE seq = %s',
        [k],
    )
    assert AuditEvent.objects.get(seq=k).data == {"i": 3}
    report = audit_chain_verify()
    assert (report.broken_seq, report.reason) == (k, "hash does not match the event's content")


def test_a_deleted_middle_row_is_reported_at_its_seq(chain: list[AuditEvent]) -> None:
    k = chain[1].seq
    assert execute("DELETE FROM governance_auditevent WHERE seq = %s", [k]) == 1
    report = audit_chain_verify()
    assert (report.broken_seq, report.events) == (k, k - 1)
    assert report.reason == f"seq {k} expected, found {k + 1}"


def test_a_re_chained_row_is_reported_at_its_seq(chain: list[AuditEvent]) -> None:
    # The row is made self-consistent (its hash matches its new prev_hash), so only the link
    # to the row before it gives it away.
    row = chain[1]
    execute(
        "UPDATE governance_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s",
        [GENESIS_HASH, _sha(GENESIS_HASH, row.body), row.seq],
    )
    report = audit_chain_verify()
    assert (report.broken_seq, report.events) == (row.seq, row.seq - 1)
    assert report.reason == "prev_hash does not match the previous event's hash"


def test_a_forged_row_with_a_recomputed_hash_is_reported_at_the_next_seq(chain: list[AuditEvent]) -> None:
    row = chain[1]
    forged = row.body.replace('"verb":"test.tamper"', '"verb":"test.forged"')
    execute(
        "UPDATE governance_auditevent SET body = %s, hash = %s WHERE seq = %s",
        [forged, _sha(row.prev_hash, forged), row.seq],
    )
    report = audit_chain_verify()
    assert (report.broken_seq, report.events) == (row.seq + 1, row.seq)
    assert report.reason == "prev_hash does not match the previous event's hash"


def test_the_rollback_restores_the_trigger(in_acme: Tenant) -> None:
    # Runs after the tamper tests above: their DISABLE TRIGGER must not have outlived them.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'governance_auditevent_append_only' "
            "AND tgrelid = 'governance_auditevent'::regclass"
        )
        assert cursor.fetchone() == ("O",)
    assert audit_chain_verify().ok
