"""PostgreSQL itself refuses to change audit rows, whatever the caller (ORM, raw SQL, admin)."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.utils import ProgrammingError

from governance.models import AuditEvent
from tenants.models import Tenant

from .conftest import append_only_trigger_disable, chain_head, events_after, execute, record


@pytest.fixture
def two_events(in_acme: Tenant) -> list[AuditEvent]:
    start, _ = chain_head()
    record("test.append_only", n=2)
    return events_after(start)


def _snapshot() -> list[tuple[int, str, str, str]]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", "body", "prev_hash", "hash"))


def test_update_is_refused(two_events: list[AuditEvent]) -> None:
    before = _snapshot()
    with pytest.raises(ProgrammingError, match="append-only: UPDATE refused"), transaction.atomic():
        execute(
            "UPDATE governance_auditevent SET body = replace(body, 'test.append_only', 'test.forged') WHERE seq = %s",
            [two_events[0].seq],
        )
    assert _snapshot() == before


def test_an_update_through_the_orm_is_refused(two_events: list[AuditEvent]) -> None:
    before = _snapshot()
    with pytest.raises(ProgrammingError, match="append-only: UPDATE refused"), transaction.atomic():
        AuditEvent.objects.filter(seq=two_events[0].seq).update(prev_hash="0" * 64)
    assert _snapshot() == before


def test_delete_is_refused(two_events: list[AuditEvent]) -> None:
    before = _snapshot()
    with pytest.raises(ProgrammingError, match="append-only: DELETE refused"), transaction.atomic():
        execute("DELETE FROM governance_auditevent WHERE seq = %s", [two_events[1].seq])
    assert _snapshot() == before


def test_a_delete_through_the_orm_is_refused(two_events: list[AuditEvent]) -> None:
    before = _snapshot()
    with pytest.raises(ProgrammingError, match="append-only: DELETE refused"), transaction.atomic():
        AuditEvent.objects.filter(seq__in=[e.seq for e in two_events]).delete()
    assert _snapshot() == before


def test_truncate_is_refused(two_events: list[AuditEvent]) -> None:
    before = _snapshot()
    with pytest.raises(ProgrammingError, match="append-only: TRUNCATE refused"), transaction.atomic():
        execute("TRUNCATE governance_auditevent")
    assert _snapshot() == before


def test_generated_columns_cannot_be_updated_even_without_the_trigger(two_events: list[AuditEvent]) -> None:
    append_only_trigger_disable()
    for column, value in (
        ("verb", "'test.forged'"),
        ("actor_label", "'mallory'"),
        ("seq", "1"),
        ("data", "'{}'::jsonb"),
        ("created_at", "now()"),
    ):
        with (
            pytest.raises(ProgrammingError, match=f'column "{column}" can only be updated to DEFAULT'),
            transaction.atomic(),
        ):
            execute(f"UPDATE governance_auditevent SET {column} = {value} WHERE seq = %s", [two_events[0].seq])
    assert AuditEvent.objects.get(seq=two_events[0].seq).verb == "test.append_only"


def test_an_insert_cannot_choose_its_own_seq(two_events: list[AuditEvent]) -> None:
    head = chain_head()
    with pytest.raises(ProgrammingError, match='non-DEFAULT value into column "seq"'), transaction.atomic():
        execute(
            "INSERT INTO governance_auditevent (seq, body, prev_hash, hash) VALUES (%s, %s, %s, %s)",
            [head[0] + 1, two_events[1].body, head[1], "f" * 64],
        )
    assert chain_head() == head
